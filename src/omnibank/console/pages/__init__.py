"""One module per area of the console; each has a ``router`` (wired by ``omnibank.console.app``)."""
