"""Load basicsr-adl whenever ``basicsr`` is imported, in any process (installed with ``basicsr_adl_autoload.pth``).

Why: BasicSR users start jobs with BasicSR's own scripts (``python basicsr/train.py``, ``python -m
basicsr.train``, torchrun workers, spawned dataloader workers). The ``.pth`` line puts a tiny finder on
``sys.meta_path`` at interpreter start-up; nothing is imported then (not torch, not basicsr, not even this
module). When ``basicsr`` is imported, the finder calls ``find_basicsr_spec`` here, whose loader applies the
fix that must precede basicsr (the torchvision alias), lets ``basicsr`` initialise, then imports
``basicsr_adl.plugin`` so the plugin's classes register. ``BASICSR_ADL_AUTOLOAD=0`` turns the plugin loading
off (unless the process imported ``basicsr_adl`` itself); only the torchvision alias is still applied, since
without it basicsr 1.4.2 cannot be imported at all.
"""
import os
import sys

# Only modules that are already loaded at start-up are imported here (importlib.abc alone would cost
# ~12 ms of imports); importlib and warnings are imported when basicsr actually loads.

ENV_SWITCH = 'BASICSR_ADL_AUTOLOAD'
_requested = [False]  # ``import basicsr_adl`` asked for the plugin: loaded with basicsr whatever the switch says


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, '1').strip().lower() not in ('0', 'false', 'no', 'off', '')


def _alias_renamed_torchvision_module() -> None:
    import importlib
    old, new = 'torchvision.transforms.functional_tensor', 'torchvision.transforms._functional_tensor'
    if old in sys.modules:
        return
    try:
        importlib.import_module(old)
    except ImportError:
        try:
            sys.modules[old] = importlib.import_module(new)
        except ImportError:
            pass  # no torchvision: basicsr will report that itself


class _PluginLoader:
    """Wraps basicsr's own loader: fix-up before, plugin registration after."""

    def __init__(self, inner, load_plugin: bool):
        self._inner = inner
        self._load_plugin = load_plugin

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:
        _alias_renamed_torchvision_module()
        self._inner.exec_module(module)
        if not self._load_plugin:
            return
        try:
            __import__('basicsr_adl.plugin')
        except Exception as err:  # never break plain basicsr because the plugin failed to load
            import warnings
            warnings.warn(f'basicsr_adl autoload failed ({type(err).__name__}: {err}); '
                          f'set {ENV_SWITCH}=0 to silence', RuntimeWarning)


def find_basicsr_spec(fullname, path=None, target=None):
    """The real spec of ``basicsr`` (from the finders after us), with its loader wrapped.

    (A venv's ``lib64 -> lib`` link makes ``site`` read every ``.pth`` twice; the ``.pth`` line checks for an
    existing finder so only one is installed.)"""
    spec = None
    for finder in sys.meta_path:
        find = getattr(finder, 'find_spec', None)
        spec = find(fullname, path, target) if find is not None else None
        if spec is not None:
            break
    if spec is not None and spec.loader is not None:
        spec.loader = _PluginLoader(spec.loader, load_plugin=enabled() or _requested[0])
    return spec


class _BasicsrFinder:
    """One-shot finder for ``basicsr`` (the ``.pth`` line installs an inline equivalent)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'basicsr':
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
        return find_basicsr_spec(fullname, path, target)


def install() -> None:
    """Install the finder in this process (for interpreters started without the ``.pth``)."""
    if 'basicsr' not in sys.modules and not any(type(f).__name__ == '_BasicsrFinder' for f in sys.meta_path):
        sys.meta_path.insert(0, _BasicsrFinder())


def request_plugin() -> None:
    """Load ``basicsr_adl.plugin`` right after ``basicsr`` is imported, even with the switch off (an explicit
    ``import basicsr_adl`` asks for the plugin)."""
    _requested[0] = True
    install()

