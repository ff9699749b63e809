"""HTTP serving: a FastAPI app over one TorchPredictor, with a web page."""
