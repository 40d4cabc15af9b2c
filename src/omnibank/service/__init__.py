"""Service desk: the bank's business calendar (:mod:`.calendar`) and the SLA clock engine (:mod:`.sla`), pure
functions of their inputs; tickets, queues and escalation build on them."""
