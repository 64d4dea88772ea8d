"""The worker: what each background job does, beside the bot and the web app.

Every job is a plain async function taking the worker's narrow view (``worker.deps.JobDeps``)
and its arguments, opening its own units of work and calling core use cases. The worker reaches
users only through ``core.ports`` (the bot implements them) and never imports the bot or the
web app; the queue, the task names and the schedules are wired in ``netroom.jobs``.
"""
