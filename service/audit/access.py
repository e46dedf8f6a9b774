"""Who may read the audit trail (SPEC §1): auditors everything; department managers and
deputies the records of their own departments; nobody else."""

from __future__ import annotations

from domain.shared import MANAGER_ROLES, Actor, NotPermitted, Role

# Record types whose views hold personal data (SPEC §7): every audit read of them is logged.
PERSONAL_RECORD_TYPES = frozenset({"customer"})


class AuditAccessDenied(NotPermitted):
    """The actor holds neither the auditor role nor a manager role for the record's department."""

    rule = "audit_access"


def audit_scope(actor: Actor) -> frozenset[str] | None:
    """The departments whose records ``actor`` may audit; ``None`` means every department.

    Raises ``AuditAccessDenied`` for anyone who may audit nothing."""
    if Role.AUDITOR in actor.roles:
        return None
    if actor.has_role(*MANAGER_ROLES) and actor.departments:
        return frozenset(actor.departments)
    raise AuditAccessDenied("reading the audit trail needs the auditor role, or a department "
                            "manager role for the record's department")


def check_record_access(actor: Actor, department: str | None) -> None:
    scope = audit_scope(actor)
    if scope is not None and department not in scope:
        raise AuditAccessDenied(f"a department manager audits only their own departments "
                                f"({', '.join(sorted(scope))}); this record belongs to "
                                f"'{department}'")
