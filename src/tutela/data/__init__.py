"""Datasets that ship inside packages, a synthetic EHR generator, and partitioners.

Nothing here downloads: every dataset is read from files installed with a package.
"""

from tutela.data.datasets import Dataset, DatasetName, dataset_catalog, load_dataset
from tutela.data.partition import PartitionScheme, partition, train_test_split_indices
from tutela.data.synthetic import generate_ehr

__all__ = [
    "Dataset",
    "DatasetName",
    "PartitionScheme",
    "dataset_catalog",
    "generate_ehr",
    "load_dataset",
    "partition",
    "train_test_split_indices",
]
