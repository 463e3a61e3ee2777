"""Tutela: privacy-preserving AI in one system.

The names here are the curated entry points; each domain package (``tutela.fl``,
``tutela.dp``, ``tutela.secagg``, ``tutela.he``, ``tutela.smpc``, ``tutela.anonymize``,
``tutela.governance``, ``tutela.data``) lists its own in ``__all__``. They import lazily,
so ``import tutela`` (and the CLI's start-up) stays fast.

::

    import tutela

    result = tutela.simulate(
        lambda: MyNet(), {"a": df_a, "b": "b.parquet"}, outcome="readmitted",
        privacy=tutela.SampleDP(epsilon=3.0), secure_aggregation="secagg+",
    )
    private = tutela.make_private(model, optimizer, loader, noise_multiplier=1.1,
                                  max_grad_norm=1.0)            # your own training loop
    tutela.redact("Call Dr Alice Moreau on 617-555-0199")       # PII out of text
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tutela._lazy import lazy_getattr

__version__ = "0.1.0"

if TYPE_CHECKING:
    from tutela.anonymize import anonymize_table
    from tutela.anonymize.text import redact, scan
    from tutela.dp.analytics import PrivateTable
    from tutela.dp.ledger import PrivacyLedger
    from tutela.dp.mechanisms import GaussianMechanism, LaplaceMechanism
    from tutela.dp.sgd import make_private
    from tutela.fl.config import load_study
    from tutela.fl.library import ClientDP, SampleDP, Study, StudyResult, simulate, split_table
    from tutela.fl.recipes import flagship_config, run_configured_study
    from tutela.governance.minimisation import SitePolicy
    from tutela.secagg import secure_sum

_LAZY = {
    "Study": "tutela.fl.library",
    "StudyResult": "tutela.fl.library",
    "SampleDP": "tutela.fl.library",
    "ClientDP": "tutela.fl.library",
    "simulate": "tutela.fl.library",
    "split_table": "tutela.fl.library",
    "make_private": "tutela.dp.sgd",
    "PrivacyLedger": "tutela.dp.ledger",
    "PrivateTable": "tutela.dp.analytics",
    "LaplaceMechanism": "tutela.dp.mechanisms",
    "GaussianMechanism": "tutela.dp.mechanisms",
    "secure_sum": "tutela.secagg",
    "scan": "tutela.anonymize.text",
    "redact": "tutela.anonymize.text",
    "anonymize_table": "tutela.anonymize",
    "SitePolicy": "tutela.governance.minimisation",
    "flagship_config": "tutela.fl.recipes",
    "run_configured_study": "tutela.fl.recipes",
    "load_study": "tutela.fl.config",
}

__all__ = [
    "ClientDP",
    "GaussianMechanism",
    "LaplaceMechanism",
    "PrivacyLedger",
    "PrivateTable",
    "SampleDP",
    "SitePolicy",
    "Study",
    "StudyResult",
    "__version__",
    "anonymize_table",
    "flagship_config",
    "load_study",
    "make_private",
    "redact",
    "run_configured_study",
    "scan",
    "secure_sum",
    "simulate",
    "split_table",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
