"""Writing a table as CSV (for analysis), Markdown (for notes) and a LaTeX table (for the paper).

Markdown and LaTeX are formatted here rather than through pandas, whose writers need optional
packages (tabulate, jinja2); LaTeX special characters are escaped, and the LaTeX uses only
commands of the LaTeX kernel (``tests/test_visualization.py`` compiles it where a TeX engine exists).
"""
import math

LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(c, c) for c in str(text))


def fmt(value):
    """One cell: errors in scientific notation, NaN as such, anything else as it reads."""
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.2e}"
    return str(value)


def markdown(t, headers, caption=None) -> str:
    lines = [caption, ""] if caption else []
    lines += ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in t.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def numeric(column) -> bool:
    """A column of numbers, or of numbers written as text ('46', '1.50e-07'): right-aligned."""
    if column.dtype.kind in "fi":
        return True
    try:
        [float(v) for v in column]
    except (TypeError, ValueError):
        return False
    return True


def latex(t, headers, caption) -> str:
    numeric_columns = [numeric(t[c]) for c in t.columns]
    spec = "".join("r" if n else "l" for n in numeric_columns)
    body = [" & ".join(latex_escape(fmt(v)) for v in row) + r" \\" for row in t.itertuples(index=False)]
    return "\n".join([r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{latex_escape(caption)}}}",
                      rf"\begin{{tabular}}{{{spec}}}", r"\hline",
                      " & ".join(latex_escape(h) for h in headers) + r" \\", r"\hline", *body, r"\hline",
                      r"\end{tabular}", r"\end{table}", ""])


def write(out_dir, name, data, shown, headers, caption):
    """``data`` (numbers, for analysis) to ``name``.csv; ``shown`` under ``headers`` to .md and .tex."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.csv", out_dir / f"{name}.md", out_dir / f"{name}.tex"]
    data.to_csv(paths[0], index=False)
    paths[1].write_text(markdown(shown, headers, caption))
    paths[2].write_text(latex(shown, headers, caption))
    return paths
