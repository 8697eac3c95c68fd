"""Layering: no import cycle, each layer imports only those below it, and no peeking.

Layers, lowest first (docs/design.md): ``core`` (pure) < ``ros`` < ``nodes`` <
``bagio`` < ``replay`` < the ``go-store`` commands; ``go_store_testing`` (test and
benchmark harnesses) sits above everything and no runtime module imports it.

No peeking: perception must be measured, so no node, no runtime core module and nothing
that replays a bag may reach (directly or through other modules) the simulator
(``core.sim``), the truth format and metrics (``core.evaluation``), the simulation's bag
writer (``bagio.simulate``), the evaluation edge (``bagio.evaluate``) or the testing
package, where the truth-fed harness lives. Checked on the source (every import,
including those inside functions) and on a clean interpreter.
"""

import ast
import pathlib
import subprocess
import sys

PACKAGE = 'go_store_nodes'
TESTING = 'go_store_testing'

# Modules that know the truth: the simulator, truth and metrics, their file edges (the
# simulation's bag writer; output bag -> predictions -> report), the commands that drive
# them, and the testing package.
TRUTH_SIDE = (f'{PACKAGE}.core.sim', f'{PACKAGE}.core.evaluation', f'{PACKAGE}.bagio.simulate',
              f'{PACKAGE}.bagio.predictions', f'{PACKAGE}.bagio.evaluate',
              f'{PACKAGE}.sim_commands', TESTING)

LAYERS = ('core', 'ros', 'nodes', 'bagio', 'replay', 'commands', 'testing')


def _module_name(repo: pathlib.Path, path: pathlib.Path) -> str:
    return '.'.join(path.relative_to(repo).with_suffix('').parts).removesuffix('.__init__')


def _modules(repo: pathlib.Path) -> dict[str, pathlib.Path]:
    found = {}
    for root in (PACKAGE, TESTING):
        for path in sorted((repo / root).rglob('*.py')) if (repo / root).is_dir() else ():
            if 'migrations' not in path.parts:
                found[_module_name(repo, path)] = path
    return found


def _imports(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports anywhere in its file (functions included)."""
    is_package = path.name == '__init__.py'
    package = name if is_package else name.rpartition('.')[0]
    result: set[str] = set()

    def add(target: str) -> None:
        while target and target not in known:
            target = target.rpartition('.')[0]
        if target and target != name:
            result.add(target)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - (node.level - 1)]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ''
            for alias in node.names:
                if f'{module}.{alias.name}' in known:
                    add(f'{module}.{alias.name}')
                else:
                    add(module)
    return result


def _graph(repo):
    modules = _modules(repo)
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _closure(graph, start):
    seen, stack = set(), [start]
    while stack:
        for target in graph.get(stack.pop(), ()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _layer(module: str) -> str:
    parts = module.split('.')
    if parts[0] == TESTING:
        return 'testing'
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return 'commands'             # the package's own modules: the `go-store` commands


def _unit(module: str) -> str:
    """Return the unit that cycles are checked between: a core subpackage or a top part."""
    parts = module.split('.')
    if parts[0] == TESTING:
        return TESTING
    if len(parts) > 2 and parts[1] == 'core' and (len(parts) > 3 or parts[2] != '__init__'):
        return '.'.join(parts[:3])
    return '.'.join(parts[:2])


def _truth_side(module: str) -> bool:
    return any(module == t or module.startswith(t + '.') for t in TRUTH_SIDE)


def _guarded(module: str) -> bool:
    """Modules that run in a store or a replay and so must never see the truth."""
    layer = _layer(module)
    return not _truth_side(module) and layer in ('core', 'ros', 'nodes', 'bagio', 'replay')


def test_nodes_and_runtime_cores_never_reach_the_truth(repo):
    graph = _graph(repo)
    guarded = [m for m in graph if _guarded(m)]
    assert any(m.startswith(f'{PACKAGE}.nodes.') for m in guarded)
    assert any(m.startswith(f'{PACKAGE}.replay.') for m in guarded)
    reached = {m: sorted(t for t in _closure(graph, m) if _truth_side(t)) for m in guarded}
    offenders = [f'{m} reaches {", ".join(targets)}' for m, targets in reached.items() if targets]
    assert not offenders, '\n'.join(offenders)


def test_the_check_finds_a_peeking_module(repo, tmp_path):
    """The import walk sees an import of the simulator hidden inside a function."""
    fake = tmp_path / PACKAGE / 'nodes'
    fake.mkdir(parents=True)
    (tmp_path / PACKAGE / '__init__.py').write_text('')
    (fake / '__init__.py').write_text('')
    (fake / 'peeker.py').write_text('def cheat():\n    from ..core.sim import truth\n')
    core_sim = tmp_path / PACKAGE / 'core' / 'sim'
    core_sim.mkdir(parents=True)
    for folder in (tmp_path / PACKAGE / 'core', core_sim):
        (folder / '__init__.py').write_text('')
    (core_sim / 'truth.py').write_text('')
    graph = _graph(tmp_path)
    assert f'{PACKAGE}.core.sim.truth' in _closure(graph, f'{PACKAGE}.nodes.peeker')


def test_a_clean_interpreter_loading_nodes_and_replay_loads_no_truth(repo):
    modules = sorted(m for m in _modules(repo) if _guarded(m)
                     and _layer(m) in ('nodes', 'replay'))
    code = ('import importlib, sys\n'
            f'for name in {modules!r}:\n'
            '    importlib.import_module(name)\n'
            f'bad = sorted(m for m in sys.modules if any(m == t or m.startswith(t + ".") '
            f'for t in {TRUTH_SIDE!r}))\n'
            'print(bad)\n'
            'sys.exit(1 if bad else 0)\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=repo, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_layer_imports_only_layers_below_it(repo):
    graph = _graph(repo)
    rank = {layer: index for index, layer in enumerate(LAYERS)}
    offenders = [f'{m} ({_layer(m)}) imports {t} ({_layer(t)})'
                 for m, targets in graph.items() for t in targets
                 if rank[_layer(t)] > rank[_layer(m)]]
    assert not offenders, '\n'.join(offenders)


def test_no_import_cycle_between_packages(repo):
    graph = _graph(repo)
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        units.setdefault(_unit(module), set()).update(
            _unit(t) for t in targets if _unit(t) != _unit(module))
    cycles = []
    for start in units:
        if start in _closure(units, start):
            cycles.append(start)
    assert not cycles, f'import cycles through: {", ".join(sorted(cycles))}'
    # Modules of one package may import each other, but never in a circle.
    module_cycles = [m for m in graph if m in _closure(graph, m)]
    assert not module_cycles, f'modules in an import cycle: {", ".join(sorted(module_cycles))}'


def test_runtime_packages_never_import_the_testing_package(repo):
    graph = _graph(repo)
    offenders = [f'{m} imports {t}' for m, targets in graph.items() for t in targets
                 if t.split('.')[0] == TESTING and m.split('.')[0] != TESTING]
    assert not offenders, '\n'.join(offenders)

