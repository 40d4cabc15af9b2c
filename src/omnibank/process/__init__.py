"""Process lead times over events that share a case id (a loan application's steps): :mod:`.report`."""
