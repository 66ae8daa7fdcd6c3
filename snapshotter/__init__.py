"""GitHub Runners Snapshotter: keeps the history of ARC runners and jobs in a database.

ARC deletes an EphemeralRunner seconds after its job ends; this package lists and
watches the ARC resources and records runner pools, runner states and finished jobs
before they vanish. Embed it with `snapshotter.daemon.run(settings, stop_event)`.
"""

__version__ = "0.1.0"
