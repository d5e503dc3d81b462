"""The package's layout: imports run one way (no cycle among bear_app modules, function-level imports included), and
test scaffolding (web servers, toy data) lives only in bear_app.testing."""
import ast
from conftest import ROOT

PKG = ROOT/'bear_app'
MODULES = {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(PKG.glob('*.py')) if p.stem not in ('__init__', '_modidx')}

def imported(tree:ast.Module)->set:
    "The bear_app modules `tree` imports, anywhere in it (module level or inside functions)."
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split('.')[1] for a in node.names if a.name.startswith('bear_app.')}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level == 1 or mod == 'bear_app' or mod.startswith('bear_app.'):
                mod = mod.removeprefix('bear_app').lstrip('.')
                out |= {mod.split('.')[0]} if mod else {a.name for a in node.names}
    return out & set(MODULES)

GRAPH = {m: imported(t) for m, t in MODULES.items()}

def cycles(graph:dict)->list:
    "Strongly connected components with more than one module, or a module that imports itself (Tarjan)."
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in graph[v]:
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop(); on.discard(w); comp.add(w)
                if w == v: break
            if len(comp) > 1 or v in graph[v]: out.append(comp)
    for v in graph:
        if v not in index: visit(v)
    return out

def test_cycle_finder_finds_cycles():
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [{'a', 'b', 'c'}]
    assert cycles({'a': {'b'}, 'b': set()}) == []
    assert imported(ast.parse('def f():\n    from bear_app.core import atomic_write\n    from . import images')) == {'core', 'images'}

def test_no_import_cycle():
    bad = cycles(GRAPH)
    assert not bad, f"bear_app modules import each other in a circle: {bad} (graph: {GRAPH})"

def test_the_predictor_needs_no_training_code():
    "bear-predict and the app load neither fastai nor the training module: predict and model never import train."
    assert 'train' not in GRAPH['predict'] and 'train' not in GRAPH['model'], GRAPH

SERVER_BASES = {'BaseHTTPRequestHandler', 'HTTPServer', 'ThreadingHTTPServer', 'BaseServer', 'TCPServer', 'ThreadingMixIn'}
SCAFFOLDING = {'LoopbackHost', 'make_image', 'near_copy', 'toy_image', 'toy_dataset', 'TOY_COLOURS'}

def scaffolding(tree:ast.Module)->list:
    "What in `tree` is test scaffolding: HTTP servers (by import or base class) and toy-data definitions."
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [node.module or ''] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found += [f'imports {n}' for n in names if n in ('http.server', 'socketserver')]
        if isinstance(node, ast.ClassDef):
            bases = {b.id if isinstance(b, ast.Name) else getattr(b, 'attr', '') for b in node.bases}
            if bases & SERVER_BASES: found.append(f'class {node.name}({", ".join(sorted(bases))})')
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and (node.name in SCAFFOLDING or node.name.startswith('toy_')):
            found.append(f'defines {node.name}')
        if isinstance(node, ast.Assign):
            found += [f'defines {t.id}' for t in node.targets if isinstance(t, ast.Name) and t.id in SCAFFOLDING]
    return found

def test_scaffolding_only_in_testing():
    assert scaffolding(MODULES['testing'])          # the detector sees what testing holds
    bad = {m: s for m, t in MODULES.items() if m != 'testing' and (s := scaffolding(t))}
    assert not bad, f"test scaffolding in product modules (move it to bear_app.testing): {bad}"

def test_no_product_module_imports_testing():
    assert not [m for m, deps in GRAPH.items() if 'testing' in deps and m != 'testing']
