"""Open checks for BasicSR's own image LMDBs (``io_backend: {type: lmdb}``).

BasicSR maps ``data.mdb`` with ``lmdb.open`` and reads values through the map: a truncated file kills the
process with a bus error (SIGBUS, no message), and a key that ``meta_info.txt`` lists but the database lacks
fails later, inside ``imfrombytes``, with an unrelated error. The plugin's RAW LMDBs check both when they
open (``basicsr_adl.raw.lmdb_store``); for BasicSR's datasets the same checks run

* at dataset construction, where ``PairedImageDataset``, ``RealESRGANPairedDataset`` and
  ``SingleImageDataset`` list the keys (``paired_paths_from_lmdb`` / ``paths_from_lmdb``, wrapped in the
  modules that imported them): size and key presence, so the error comes before training starts;
* before ``LmdbBackend`` opens an environment (every other BasicSR dataset, on its first read): size only.

The errors are ``LMDBError`` (a ``basicsr_adl.errors.DataError``): one line naming the folder.
"""
import functools
from typing import Any, Callable

import basicsr.data.data_util as data_util
import basicsr.data.paired_image_dataset as paired_image_dataset
import basicsr.data.realesrgan_paired_dataset as realesrgan_paired_dataset
import basicsr.data.single_image_dataset as single_image_dataset
import basicsr.utils.file_client as file_client

from basicsr_adl.raw.lmdb_store import check_image_lmdb

_original_backend_init = file_client.LmdbBackend.__init__


def _checking_listing(listing: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(listing)
    def checked(folders, *args, **kwargs):
        for folder in folders if isinstance(folders, (list, tuple)) else [folders]:
            check_image_lmdb(str(folder))
        return listing(folders, *args, **kwargs)

    checked.__wrapped_by_basicsr_adl__ = True
    return checked


def _checked_backend_init(self, db_paths, *args, **kwargs) -> None:
    for path in db_paths if isinstance(db_paths, (list, tuple)) else [db_paths]:
        check_image_lmdb(str(path), check_keys=False)
    _original_backend_init(self, db_paths, *args, **kwargs)


def install() -> None:
    for module, name in ((paired_image_dataset, 'paired_paths_from_lmdb'),
                         (realesrgan_paired_dataset, 'paired_paths_from_lmdb'),
                         (single_image_dataset, 'paths_from_lmdb'),
                         (data_util, 'paired_paths_from_lmdb'), (data_util, 'paths_from_lmdb')):
        listing = getattr(module, name)
        if not getattr(listing, '__wrapped_by_basicsr_adl__', False):
            setattr(module, name, _checking_listing(listing))
    file_client.LmdbBackend.__init__ = _checked_backend_init
