"""Auditors' reads (SPEC §7 "Audit"): history, as-of state, diffs, the global log, exports.

Everything here is generic over ``service.catalogue.RECORD_TYPES`` and ``event_log``: a new
record type is audited without new code. The composition root builds one ``Auditor``
(``container.audit``): it creates the audit tables and owns the as-of read pool.
"""

from service.audit.auditor import Auditor, auditor_of
from service.audit.reads import ReadContext

__all__ = ["Auditor", "ReadContext", "auditor_of"]
