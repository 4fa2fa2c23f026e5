"""``sarl report RUN_DIRS...``: one Markdown file and one self-contained HTML page (plots inlined as
base64 PNG, no scripts, no network) from evaluation folders (``summary.json``) and analysis folders
(``analysis.json``)."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

from sarl.evaluate import comparison, comparison_markdown, plot_accuracy_vs_length
from sarl.io import DataError
from sarl.stats import Z95


def collect(run_dirs: list[Path]) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Merge the evaluation summaries of ``run_dirs`` (a model seen in two folders is named
    ``<folder>/<model>``) and gather analysis results and training runs."""
    from sarl.train_report import is_training_run, load_run

    merged: dict[str, Any] = {"models": {}}
    analyses, runs = [], []
    for d in run_dirs:
        if not d.is_dir():
            raise DataError(f"{d}: not a folder; expected an output folder of `sarl eval`, `sarl analyze` or "
                            "`sarl train`")
        found = is_training_run(d)
        if found:
            runs.append(load_run(d))
        summ = d / "summary.json"
        if summ.exists():
            found = True
            try:
                data = json.loads(summ.read_text())
            except json.JSONDecodeError as exc:
                raise DataError(f"{summ}:{exc.lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(data.get("models"), dict):
                raise DataError(f"{summ}: no 'models' object; is this a `sarl eval` summary?")
            merged.setdefault("settings", data.get("settings"))
            for model, per in data["models"].items():
                name = model if model not in merged["models"] else f"{d.name}/{model}"
                merged["models"][name] = per
        an = d / "analysis.json"
        if an.exists():
            found = True
            analyses.append({"dir": str(d), "png": d / "analysis.png", **json.loads(an.read_text())})
        if not found:
            raise DataError(f"{d}: holds neither summary.json (sarl eval), analysis.json (sarl analyze) nor "
                            "metrics.jsonl + config.yaml (sarl train)")
    return merged, analyses, runs


def _inline(text: str) -> str:
    """Escaped text with the report's inline Markdown as HTML: ``**bold**`` and ```code```."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def md_to_html(md: str) -> str:
    """The small subset of Markdown the reports use: headings, paragraphs and ``- `` list items (with bold
    and code: the analysis's "Highest mean SAR: **restated**."), pipe tables, ``> `` quotes and fenced
    code blocks (both data, such as questions and model answers: shown exactly as written)."""
    out, table, items = [], [], []
    fence: list[str] | None = None
    closing = "```"

    def flush():
        if not table:
            return
        head, *body = [r for r in table if not re.fullmatch(r"\|[-:| ]+\|", r)]
        cells = lambda r: [c.strip() for c in r.strip("|").split("|")]
        # cells are data (model answers, where ** may be a power): shown exactly as written
        out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cells(head))
                   + "</tr></thead><tbody>" + "".join(
                       "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells(r)) + "</tr>" for r in body)
                   + "</tbody></table>")
        table.clear()

    for line in md.splitlines():
        if fence is not None:  # inside a fenced block: every line verbatim until the same fence closes it
            if line.strip() == closing:
                out.append("<pre>" + html.escape("\n".join(fence)) + "</pre>")
                fence = None
            else:
                fence.append(line)
            continue
        if line.startswith("- "):
            flush()
            items.append(f"<li>{_inline(line[2:])}</li>")
            continue
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items.clear()
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("```"):
            fence, closing = [], "`" * (len(line) - len(line.lstrip("`")))
        elif line.startswith(">"):
            out.append(f"<blockquote>{html.escape(line[1:].strip())}</blockquote>")
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    flush()
    if items:
        out.append("<ul>" + "".join(items) + "</ul>")
    if fence is not None:  # an unclosed fence still shows its lines
        out.append("<pre>" + html.escape("\n".join(fence)) + "</pre>")
    return "\n".join(out)


def _settings_line(summary: dict[str, Any]) -> str:
    """Problems and samples per dataset and the generation settings of each model (from summary.json)."""
    parts = []
    for model, per in summary["models"].items():
        for ds, m in per.items():
            parts.append(f"{model} on {ds}: {m.get('problems')} problems, {m.get('samples')} samples")
    gen = summary.get("settings", {}).get("gen") if isinstance(summary.get("settings"), dict) else None
    text = "; ".join(parts) + "."
    if gen:
        text += (f" Decoding: temperature {gen.get('temperature')}, top_p {gen.get('top_p')}, {gen.get('n')} sample(s) per "
                 f"problem, at most {gen.get('max_new_tokens')} new tokens.")
    return text


def img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,td:nth-child(2){text-align:left}img{max-width:100%}figure{margin:1em 0}"""


def build_report(run_dirs: list[Path], out_dir: Path, reference: str | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and the plots into ``out_dir``."""
    summary, analyses, runs = collect(run_dirs)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = ["# sarl report", "", "Runs: " + ", ".join(f"`{d}`" for d in run_dirs), ""]
    body_html = []
    plots: list[Path] = []
    if summary["models"]:
        rows = comparison(summary, reference)
        table = comparison_markdown(rows)
        plots = plot_accuracy_vs_length(summary, out_dir / "plots")
        md += ["## Accuracy and length", "", _settings_line(summary), "", table]
        md += [f"![{p.stem}](plots/{p.name})" for p in plots] + [""]
        body_html.append("<h2>Accuracy and length</h2>" + md_to_html(_settings_line(summary) + "\n\n" + table))
        body_html += [img_tag(p, f"accuracy over all samples (± {Z95:.2f} SE) against mean length, one point per model; "
                              f"dataset {p.stem}") for p in plots]
    for a in analyses:
        from sarl.analyze import AnalysisResult, markdown_table

        res = AnalysisResult(n=a["n"], means=a["means"], win_rates=a["win_rates"], rows=[])
        t = markdown_table(res, a.get("model", "?"))
        md += [t.replace("# SAR", "## SAR", 1), ""]
        body_html.append(md_to_html(t.replace("# SAR", "## SAR", 1)))
        if a["png"].exists():
            body_html.append(img_tag(a["png"], f"SAR analysis ({a['dir']})"))
    from sarl.train_report import run_section

    for run in runs:
        head, tail, png = run_section(run, out_dir / "plots")
        md += [head] + ([f"![training curves](plots/{png.name})", ""] if png is not None else []) + [tail]
        body_html.append(md_to_html(head))
        if png is not None:
            body_html.append(img_tag(png, "per-step curves of every logged metric group (x: training step)"))
        body_html.append(md_to_html(tail))
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>sarl report</title><style>{CSS}</style>"
            f"</head><body><h1>sarl report</h1><p>Runs: {html.escape(', '.join(map(str, run_dirs)))}</p>"
            + "\n".join(body_html) + "</body></html>\n")
    html_path.write_text(page, encoding="utf-8")
    return {"md": md_path, "html": html_path}
