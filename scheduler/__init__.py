"""The scheduler: APScheduler jobs that send what is due. Run inside the web process
(PORTAL_RUN_SCHEDULER=1) or alone with `python -m scheduler`."""
