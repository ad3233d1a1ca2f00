"""Table: best dense error per dataset per family, with configuration and parameter count.

Written as CSV (for analysis), Markdown (for notes) and a LaTeX tabular (for the paper). Markdown
and LaTeX are formatted here rather than through pandas, whose writers need optional packages
(tabulate, jinja2); LaTeX special characters in names are escaped.
"""
import math

from utils.summary import best_per_dataset
from visualization.style import BEST_ROW_COLUMNS, NAMES, families

REQUIRED_COLUMNS = BEST_ROW_COLUMNS  # max error, rel. L2 and H1 columns only where the run has them

COLUMNS = [("dataset", "dataset"), ("family", "family"), ("mode", "mode"), ("config", "configuration"),
           ("num_params", "parameters"), ("dense_mse", "dense MSE"), ("dense_max_err", "max error"),
           ("dense_rel_l2", "rel. L2"), ("h1_error", "H1 error")]
LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(c, c) for c in str(text))


def _fmt(value):
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.2e}"
    return str(value)


def table(results):
    t = best_per_dataset({f: results[f] for f in families(results)})
    t["family"] = t["family"].map(NAMES)
    cols = [(c, h) for c, h in COLUMNS if c in t.columns]
    return t[[c for c, _ in cols]], [h for _, h in cols]


def markdown(t, headers) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in t.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def latex(t, headers, caption) -> str:
    numeric = [t[c].dtype.kind in "fi" for c in t.columns]
    spec = "".join("r" if n else "l" for n in numeric)
    body = [" & ".join(latex_escape(_fmt(v)) for v in row) + r" \\" for row in t.itertuples(index=False)]
    return "\n".join([r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(caption)}}}",
                      rf"\begin{{tabular}}{{{spec}}}", r"\hline",
                      " & ".join(latex_escape(h) for h in headers) + r" \\", r"\hline", *body, r"\hline",
                      r"\end{tabular}", r"\end{table}", ""])


def draw(section, results, models, out_dir):
    t, headers = table(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "best_per_dataset.csv", out_dir / "best_per_dataset.md", out_dir / "best_per_dataset.tex"]
    t.set_axis(headers, axis=1).to_csv(paths[0], index=False)
    paths[1].write_text(markdown(t, headers))
    paths[2].write_text(latex(t, headers, f"{section}: best dense error per dataset and family"))
    return paths
