"""The auditor: verifies a registry's round history from the chain and the artifact store, without torch."""

from fedledger.audit.auditor import Auditor
from fedledger.audit.findings import CHECKS, AuditReport, Finding, RoundAudit, RunAudit

__all__ = ["CHECKS", "AuditReport", "Auditor", "Finding", "RoundAudit", "RunAudit"]
