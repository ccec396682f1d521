"""Data: tables and CSV files, built-in data sets, preprocessing, splits, data sets, loaders."""

from scratchnn.data.builtin import (
    BUILTIN_DATASETS,
    BUILTIN_TARGET,
    BUILTIN_TASKS,
    BuiltinInfo,
    builtin_info,
    load_builtin,
    load_table,
)
from scratchnn.data.dataset import Dataset, Subset, TensorDataset, collate
from scratchnn.data.loader import DataLoader
from scratchnn.data.preprocessing import (
    Preprocessor,
    StandardScaler,
    drop_missing_target,
)
from scratchnn.data.split import train_val_test_split
from scratchnn.data.table import (
    MISSING_MARKERS,
    ColumnNotFoundError,
    CSVError,
    Table,
    is_missing,
    read_csv,
    write_csv,
)
from scratchnn.data.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    Encoding,
    HFTokenizer,
    Tokenizer,
    load_tokenizer,
)

__all__ = [
    "BUILTIN_DATASETS",
    "BUILTIN_TARGET",
    "BUILTIN_TASKS",
    "MISSING_MARKERS",
    "BuiltinInfo",
    "CSVError",
    "ColumnNotFoundError",
    "DataLoader",
    "Dataset",
    "Preprocessor",
    "StandardScaler",
    "Subset",
    "Table",
    "TensorDataset",
    "builtin_info",
    "collate",
    "drop_missing_target",
    "is_missing",
    "load_builtin",
    "load_table",
    "read_csv",
    "train_val_test_split",
    "write_csv",
    "BPETokenizer",
    "CharTokenizer",
    "Encoding",
    "HFTokenizer",
    "Tokenizer",
    "load_tokenizer",
]
