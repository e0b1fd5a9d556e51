"""A study's own analysis, beside the generic report (:mod:`xcal.report`): what only the study's answer needs.

* :mod:`~xcal.study.scores`: every job's saved predictions re-scored for the study (signed calibration, the Brier
  decomposition, ECE with the published 10 bins, every calibrator) and the nested-design estimates its
  sentences quote;
* :mod:`~xcal.study.findings`, :mod:`~xcal.study.findings_page`, :mod:`~xcal.study.findings_plots`: the
  findings page (``xcal-report STUDY --findings docs/findings.md``), its tables, sentences and figures;
* :mod:`~xcal.study.plan`: sizing the next study from a pilot's variance and minutes
  (``xcal-report PILOT --plan ece=0.02``).

These read a sweep through :mod:`xcal.report` (its loader, inference and tables); the generic report never
imports them, except its command line, which offers ``--findings`` and ``--plan``.
"""
