"""A self-contained experiment report: Markdown with figure files, and HTML with the figures embedded."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Report:
    """An ordered list of blocks: headings, paragraphs, Markdown tables, code and figures (PNG paths)."""

    title: str
    blocks: list[tuple[str, str]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("heading", text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def table(self, markdown: str) -> None:
        self.blocks.append(("table", markdown))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("figure", f"{path}\t{caption}"))

    def to_markdown(self, relative_to: Path) -> str:
        lines = [f"# {self.title}", ""]
        for kind, content in self.blocks:
            if kind == "heading":
                lines += [f"## {content}", ""]
            elif kind in {"paragraph", "table"}:
                lines += [content, ""]
            elif kind == "code":
                lines += ["```", content.rstrip(), "```", ""]
            else:
                path, caption = content.split("\t", 1)
                lines += [f"![{caption}]({Path(path).relative_to(relative_to).as_posix()})", f"*{caption}*", ""]
        return "\n".join(lines)

    def to_html(self) -> str:
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title>",
            "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;line-height:1.45}"
            "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
            "th{background:#eee}pre{background:#f5f5f5;padding:8px;overflow:auto}"
            "figure{display:inline-block;margin:6px}img{max-width:100%}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        for kind, content in self.blocks:
            if kind == "heading":
                parts.append(f"<h2>{html.escape(content)}</h2>")
            elif kind == "paragraph":
                parts.append(f"<p>{_inline(content)}</p>")
            elif kind == "table":
                parts.append(_table_html(content))
            elif kind == "code":
                parts.append(f"<pre>{html.escape(content)}</pre>")
            else:
                path, caption = content.split("\t", 1)
                data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
                parts.append(
                    f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(caption)}'>"
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write report.md and report.html into `folder`."""
        markdown, page = folder / "report.md", folder / "report.html"
        markdown.write_text(self.to_markdown(folder), encoding="utf-8")
        page.write_text(self.to_html(), encoding="utf-8")
        return markdown, page


def _inline(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def _table_html(markdown: str) -> str:
    rows = [line.strip().strip("|").split("|") for line in markdown.strip().splitlines()]
    header, body = rows[0], [row for row in rows[1:] if not set("".join(row)) <= set("-: ")]
    head = "".join(f"<th>{html.escape(cell.strip())}</th>" for cell in header)
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><tr>{head}</tr>{cells}</table>"
