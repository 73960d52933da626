"""Plots of diagnoses (matplotlib, the optional ``plot`` extra, imported on first use).

- :func:`plot_diagnosis`: each estimator's sampling distribution against the estimand.
- :func:`plot_power_curve`: power (or any diagnosand) along an ``expand_design`` grid.
- :func:`plot_diagnosands`: estimators side by side on bias, RMSE, power... with error bars.
- :func:`plot_search`: the curve behind a ``find_sample_size``/``find_mde`` answer.
- :func:`write_report`/:func:`report_html`: a self-contained HTML report (table + plots).
"""

from .diagnosis import plot_diagnosands, plot_diagnosis, plot_power_curve
from .report import report_html, write_report
from .search import plot_search

__all__ = ["plot_diagnosands", "plot_diagnosis", "plot_power_curve", "plot_search",
           "report_html", "write_report"]
