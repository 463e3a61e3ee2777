"""Datasets that ship inside packages, your own CSV and Parquet tables, a synthetic EHR
generator, and partitioners.

Nothing here downloads: every dataset is read from files installed with a package.
"""

from tutela.data.datasets import Dataset, DatasetName, dataset_catalog, load_dataset
from tutela.data.partition import PartitionScheme, partition, train_test_split_indices
from tutela.data.synthetic import generate_ehr
from tutela.data.tables import ColumnRoles, read_header, read_table, table_dataset

__all__ = [
    "ColumnRoles",
    "Dataset",
    "DatasetName",
    "PartitionScheme",
    "dataset_catalog",
    "generate_ehr",
    "load_dataset",
    "partition",
    "read_header",
    "read_table",
    "table_dataset",
    "train_test_split_indices",
]
