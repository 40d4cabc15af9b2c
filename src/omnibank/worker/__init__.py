"""Background work of every domain: a registry the domains add their jobs to (``registry``), the loop that
runs them with leases, back-off and metrics (``loop``, ``leases``, ``metrics``), and ``omnibank worker``
(``cli``). Imports no domain: the domains register into it (see ``registry.JOB_MODULES``)."""
