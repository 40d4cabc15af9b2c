"""The web console for bank staff (``/console``) and the pages customers see (``/c/``), served by the same
FastAPI app as the API: server-rendered Jinja2 templates with htmx and ECharts (vendored), no build step.
Every page reads through its domain's read layer (the same functions as the CLI and the API)."""
