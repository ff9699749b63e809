"""HTTP serving: a FastAPI app over one Predictor, with a web page."""
