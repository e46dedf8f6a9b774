"""Demo data: a realistic operations department, made through the real commands.

``seeder.py`` runs storylines (one record's life each) through the Ledger in-process, as real
people with real roles, so the audit log, the hash chain and the views are exactly what the
service would have produced; ``stories.py`` holds the storylines, written from the policy
documents' workflows (SPEC §2–§6).
"""

from service.demo.seeder import PEOPLE, Seeder, SeedReport

__all__ = ["PEOPLE", "SeedReport", "Seeder"]
