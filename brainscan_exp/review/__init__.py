"""The review round trip: the expert-label ledger, answer files, and the Label Studio adapter.

The ledger is data (like the dataset folder): :mod:`.ledger` alone reads, validates and appends it.
Choosing the next reads is science and lives in :mod:`brainscan_exp.core.review_queue`.
"""
