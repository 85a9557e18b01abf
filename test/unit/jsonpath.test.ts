import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { JsonPathError, renderJsonPath } from '../../src/output/jsonpath';

const OBJ = JSON.parse(
  '{"kind":"ManagementAddress","metadata":{"name":"management-address","annotations":{"kube-vip.io/vipHost":"node-1","kube-vip.io/hwaddr":"8c:dc:d4:b5:f0:fd","kube-vip.io/requestedIP":"192.0.2.10"}},"spec":{"address":"192.0.2.10","mode":"static"},"status":{"holder":"node-1","term":42,"nodes":[{"name":"node-1","ip":"192.0.2.11","healthy":true},{"name":"node-2","ip":"192.0.2.12","healthy":false}]}}',
) as unknown;

// Keys sorted, as Go's json.Marshal prints a map.
const ANNOTATIONS_JSON =
  '{"kube-vip.io/hwaddr":"8c:dc:d4:b5:f0:fd","kube-vip.io/requestedIP":"192.0.2.10","kube-vip.io/vipHost":"node-1"}';
const NODES_JSON =
  '[{"healthy":true,"ip":"192.0.2.11","name":"node-1"},{"healthy":false,"ip":"192.0.2.12","name":"node-2"}]';
const OBJ_JSON =
  '{"kind":"ManagementAddress","metadata":{"annotations":' + ANNOTATIONS_JSON + ',"name":"management-address"},' +
  '"spec":{"address":"192.0.2.10","mode":"static"},"status":{"holder":"node-1","nodes":' + NODES_JSON + ',"term":42}}';

const LETTERS = { l: ['a', 'b', 'c', 'd', 'e'] };
const NUMBERS = { items: [{ n: 1 }, { n: 5 }, { n: 10 }, { n: 2.5 }, { m: 7 }] };
const LIST = {
  kind: 'List',
  items: [
    OBJ,
    { metadata: { name: 'other' }, status: { nodes: [{ name: 'node-3' }] } },
  ],
};

const r = (template: string, data: unknown = OBJ): string => renderJsonPath(template, data);

/** Asserts a JsonPathError whose message names the given position. */
function throwsAt(template: string, position: number, pattern?: RegExp): void {
  assert.throws(
    () => renderJsonPath(template, OBJ),
    (err: unknown) => {
      assert.ok(err instanceof JsonPathError, `expected JsonPathError for ${template}, got ${String(err)}`);
      assert.equal(err.position, position, `position for ${template}: ${err.message}`);
      assert.match(err.message, new RegExp(`position ${position}\\b`));
      if (pattern) assert.match(err.message, pattern);
      return true;
    },
  );
}

describe('renderJsonPath: fields', () => {
  test('plain and nested fields', () => {
    assert.equal(r('{.kind}'), 'ManagementAddress');
    assert.equal(r('{.metadata.name}'), 'management-address');
    assert.equal(r('{.spec.address}'), '192.0.2.10');
  });

  test('escaped dots in annotation keys; "/" and "-" are name characters', () => {
    assert.equal(r('{.metadata.annotations.kube-vip\\.io/vipHost}'), 'node-1');
    assert.equal(r('{.metadata.annotations.kube-vip\\.io/hwaddr}'), '8c:dc:d4:b5:f0:fd');
    assert.equal(r('{.metadata.annotations.kube-vip\\.io/requestedIP}'), '192.0.2.10');
  });

  test('an unescaped dot splits the key, so it matches nothing', () => {
    assert.equal(r('{.metadata.annotations.kube-vip.io/vipHost}'), '');
  });

  test('$ and @ are the current object', () => {
    assert.equal(r('{$.spec.mode}'), 'static');
    assert.equal(r('{@.spec.mode}'), 'static');
    assert.equal(r('{@}'), OBJ_JSON);
    assert.equal(r('{$}'), OBJ_JSON);
    assert.equal(r('{}'), OBJ_JSON);
  });

  test('bracket names, single or double quoted, may contain dots', () => {
    assert.equal(r("{['kind']}"), 'ManagementAddress');
    assert.equal(r("{.metadata.annotations['kube-vip.io/vipHost']}"), 'node-1');
    assert.equal(r('{.metadata.annotations["kube-vip.io/hwaddr"]}'), '8c:dc:d4:b5:f0:fd');
    assert.equal(r("{.metadata.annotations['kube-vip\\.io/requestedIP']}"), '192.0.2.10');
    assert.equal(r("{.metadata['annotations']['kube-vip.io/vipHost']}"), 'node-1');
    assert.equal(r('{.a[\'b.c\']}', { a: { 'b.c': 'dotted', b: { c: 'nested' } } }), 'dotted');
  });

  test('unions of names and indexes', () => {
    assert.equal(r("{.metadata.annotations['kube-vip.io/vipHost', 'kube-vip.io/requestedIP']}"), 'node-1 192.0.2.10');
    assert.equal(r('{.status.nodes[1,0].name}'), 'node-2 node-1');
    assert.equal(r("{.status.nodes[*]['name','ip']}"), 'node-1 node-2 192.0.2.11 192.0.2.12');
  });

  test('spaces inside braces are ignored', () => {
    assert.equal(r('{ .status.holder }'), 'node-1');
    assert.equal(r('{.status.nodes[ 0 ].name}'), 'node-1');
  });
});

describe('renderJsonPath: output formatting', () => {
  test('objects and arrays print as compact JSON', () => {
    assert.equal(r('{.metadata.annotations}'), ANNOTATIONS_JSON);
    assert.equal(r('{.status.nodes}'), NODES_JSON);
    assert.equal(r('{.status.nodes[0]}'), '{"healthy":true,"ip":"192.0.2.11","name":"node-1"}');
    assert.equal(r('{.spec}'), '{"address":"192.0.2.10","mode":"static"}');
  });

  test('scalars print as their JSON text, strings without quotes', () => {
    assert.equal(r('{.status.term}'), '42');
    assert.equal(r('{.status.nodes[0].healthy}'), 'true');
    assert.equal(r('{.status.nodes[1].healthy}'), 'false');
    assert.equal(r('{.a}', { a: null }), 'null');
    assert.equal(r('{.a}', { a: 1.5 }), '1.5');
    assert.equal(r('{.a}', { a: -3 }), '-3');
    assert.equal(r('{.a}', { a: 'with "quotes"' }), 'with "quotes"');
    assert.equal(r('{.a}', { a: '' }), '');
  });

  test('literal text around expressions is copied', () => {
    assert.equal(r('holder={.status.holder} term={.status.term}'), 'holder=node-1 term=42');
    assert.equal(r('VIP {.spec.address} is held by {.status.holder}.'), 'VIP 192.0.2.10 is held by node-1.');
    assert.equal(r('no expressions at all'), 'no expressions at all');
    assert.equal(r(''), '');
    assert.equal(r('a}b'), 'a}b');
  });

  test('several results from one expression are joined by one space; expressions are not', () => {
    assert.equal(r('{.status.nodes[*].name}'), 'node-1 node-2');
    assert.equal(r('{.spec.mode}{.spec.mode}'), 'staticstatic');
    assert.equal(r('[{.status.nodes[*].ip}]'), '[192.0.2.11 192.0.2.12]');
  });

  test('string literals with escapes', () => {
    assert.equal(r('{"\\n"}'), '\n');
    assert.equal(r('{"\\t"}'), '\t');
    assert.equal(r('{.kind}{"\\t"}{.spec.mode}{"\\n"}'), 'ManagementAddress\tstatic\n');
    assert.equal(r("{'single'}"), 'single');
    assert.equal(r('{"{"}{"}"}'), '{}');
    assert.equal(r('{"a\\"b"}'), 'a"b');
    assert.equal(r('{"back\\\\slash"}'), 'back\\slash');
    assert.equal(r('{"\\u00e9\\x41\\101\\r"}'), '\u00e9AA\r');
    assert.equal(r('{"  spaced  "}'), '  spaced  ');
  });

  test('number and boolean literals', () => {
    assert.equal(r('{42}'), '42');
    assert.equal(r('{-1.5}'), '-1.5');
    assert.equal(r('{true}'), 'true');
  });
});

describe('renderJsonPath: ranges', () => {
  test('range with newline separators', () => {
    assert.equal(
      r('{range .status.nodes[*]}{.name}{"\\t"}{.ip}{"\\n"}{end}'),
      'node-1\t192.0.2.11\nnode-2\t192.0.2.12\n',
    );
  });

  test('text around and inside a range', () => {
    assert.equal(r('nodes:{range .status.nodes[*]} {.name}={.healthy}{end}.'), 'nodes: node-1=true node-2=false.');
  });

  test('range over a filter', () => {
    assert.equal(r('{range .status.nodes[?(@.healthy==true)]}{.ip}{"\\n"}{end}'), '192.0.2.11\n');
  });

  test('range over nothing prints nothing and continues after {end}', () => {
    assert.equal(r('a{range .missing[*]}{.name}{end}b'), 'ab');
  });

  test('range without a wildcard runs once over the value itself', () => {
    assert.equal(r('{range .status}{.holder}/{.term}{end}'), 'node-1/42');
    assert.equal(r('{range .status.nodes}{@}{end}'), NODES_JSON);
  });

  test('nested ranges', () => {
    assert.equal(
      r('{range .items[*]}{.metadata.name}:{range .status.nodes[*]} {.name}{end}{"\\n"}{end}', LIST),
      'management-address: node-1 node-2\nother: node-3\n',
    );
  });

  test('range keyword directly followed by a path', () => {
    assert.equal(r('{range.status.nodes[*]}{.name},{end}'), 'node-1,node-2,');
  });
});

describe('renderJsonPath: filters', () => {
  test('== and != on strings', () => {
    assert.equal(r('{.status.nodes[?(@.name=="node-2")].ip}'), '192.0.2.12');
    assert.equal(r("{.status.nodes[?(@.name=='node-1')].ip}"), '192.0.2.11');
    assert.equal(r('{.status.nodes[?(@.name!="node-1")].name}'), 'node-2');
    assert.equal(r('{.status.nodes[?( @.name == "node-1" )].ip}'), '192.0.2.11');
    assert.equal(r('{.status.nodes[?(@.name=="node-9")].ip}'), '');
  });

  test('booleans', () => {
    assert.equal(r('{.status.nodes[?(@.healthy==true)].name}'), 'node-1');
    assert.equal(r('{.status.nodes[?(@.healthy==false)].name}'), 'node-2');
    assert.equal(r('{.status.nodes[?(@.healthy!=true)].name}'), 'node-2');
  });

  test('values of different types are never equal', () => {
    assert.equal(r('{.status.nodes[?(@.healthy=="true")].name}'), '');
    assert.equal(r('{.items[?(@.n=="5")].n}', NUMBERS), '');
  });

  test('numeric comparisons', () => {
    assert.equal(r('{.items[?(@.n>=5)].n}', NUMBERS), '5 10');
    assert.equal(r('{.items[?(@.n>5)].n}', NUMBERS), '10');
    assert.equal(r('{.items[?(@.n<5)].n}', NUMBERS), '1 2.5');
    assert.equal(r('{.items[?(@.n<=2.5)].n}', NUMBERS), '1 2.5');
    assert.equal(r('{.items[?(@.n==10)].n}', NUMBERS), '10');
    assert.equal(r('{.items[?(@.n!=10)].n}', NUMBERS), '1 5 2.5');
    assert.equal(r('{.items[?(@.n>-1)].n}', NUMBERS), '1 5 10 2.5');
  });

  test('string ordering', () => {
    assert.equal(r('{.status.nodes[?(@.ip>"192.0.2.11")].name}'), 'node-2');
    assert.equal(r('{.status.nodes[?(@.ip<="192.0.2.11")].name}'), 'node-1');
  });

  test('existence', () => {
    assert.equal(r('{.items[?(@.m)].m}', NUMBERS), '7');
    assert.equal(r('{.items[?(@.n)].n}', NUMBERS), '1 5 10 2.5');
    assert.equal(r('{.status.nodes[?(@.healthy)].name}'), 'node-1 node-2');
    assert.equal(r('{.status.nodes[?(@.zone)].name}'), '');
  });

  test('path on both sides', () => {
    assert.equal(r('{.items[?(@.a==@.b)].id}', { items: [{ id: 1, a: 'x', b: 'x' }, { id: 2, a: 'x', b: 'y' }] }), '1');
  });

  test('a filter on something that is not an array matches nothing', () => {
    assert.equal(r('{.spec[?(@.mode=="static")]}'), '');
  });

  test('comparing a multi-valued operand is an error', () => {
    assert.throws(() => r('{.items[?(@.tags[*]=="a")].id}', { items: [{ id: 1, tags: ['a', 'b'] }] }), JsonPathError);
  });
});

describe('renderJsonPath: wildcards, slices, indexes, recursive descent', () => {
  test('[*] and .* wildcards', () => {
    assert.equal(r('{.status.nodes[*].name}'), 'node-1 node-2');
    assert.equal(r('{.status.nodes.*.ip}'), '192.0.2.11 192.0.2.12');
    assert.equal(r('{.spec.*}'), '192.0.2.10 static');
    assert.equal(r('{.metadata.annotations.*}'), 'node-1 8c:dc:d4:b5:f0:fd 192.0.2.10');
    assert.equal(r('{.status.nodes[*].*}'), 'node-1 192.0.2.11 true node-2 192.0.2.12 false');
    assert.equal(r('{.spec[*]}'), '192.0.2.10 static');
  });

  test('slices', () => {
    assert.equal(r('{.status.nodes[0:1].name}'), 'node-1');
    assert.equal(r('{.status.nodes[1:].name}'), 'node-2');
    assert.equal(r('{.status.nodes[:2].name}'), 'node-1 node-2');
    assert.equal(r('{.l[1:3]}', LETTERS), 'b c');
    assert.equal(r('{.l[::2]}', LETTERS), 'a c e');
    assert.equal(r('{.l[1:5:2]}', LETTERS), 'b d');
    assert.equal(r('{.l[-2:]}', LETTERS), 'd e');
    assert.equal(r('{.l[:-3]}', LETTERS), 'a b');
    assert.equal(r('{.l[:]}', LETTERS), 'a b c d e');
    assert.equal(r('{.l[3:1]}', LETTERS), '');
    assert.equal(r('{.l[2:2]}', LETTERS), '');
    assert.equal(r('{.l[3:100]}', LETTERS), 'd e');
  });

  test('indexes, including negative ones', () => {
    assert.equal(r('{.status.nodes[0].name}'), 'node-1');
    assert.equal(r('{.status.nodes[-1].name}'), 'node-2');
    assert.equal(r('{.status.nodes[-2].ip}'), '192.0.2.11');
    assert.equal(r('{.l[-1]}', LETTERS), 'e');
  });

  test('out-of-range indexes match nothing', () => {
    assert.equal(r('{.status.nodes[2].name}'), '');
    assert.equal(r('{.status.nodes[-3].name}'), '');
  });

  test('recursive descent', () => {
    assert.equal(r('{..name}'), 'management-address node-1 node-2');
    assert.equal(r('{..ip}'), '192.0.2.11 192.0.2.12');
    assert.equal(r('{..holder}'), 'node-1');
    assert.equal(r('{.status..name}'), 'node-1 node-2');
    assert.equal(r('{..nodes[?(@.healthy==false)].name}'), 'node-2');
    assert.equal(r('{..nodes[-1].ip}'), '192.0.2.12');
    assert.equal(r('{..kube-vip\\.io/vipHost}'), 'node-1');
    assert.equal(r('{..name}', LIST), 'management-address node-1 node-2 other node-3');
  });
});

describe('renderJsonPath: missing data prints nothing', () => {
  test('missing keys', () => {
    assert.equal(r('{.nope}'), '');
    assert.equal(r('{.metadata.nope.deeper}'), '');
    assert.equal(r('x{.nope}y'), 'xy');
    assert.equal(r('{.metadata.labels.app}'), '');
  });

  test('wrong shapes', () => {
    assert.equal(r('{.spec[0]}'), '');
    assert.equal(r('{.status.nodes.name}'), '');
    assert.equal(r('{.kind.length}'), '');
    assert.equal(r('{.status.term[0]}'), '');
  });

  test('inherited properties are not fields', () => {
    assert.equal(r('{.constructor}'), '');
    assert.equal(r('{.toString}'), '');
    assert.equal(r('{.__proto__}'), '');
    assert.equal(r('{.status.nodes.length}'), '');
  });

  test('null and undefined data', () => {
    assert.equal(renderJsonPath('{.a}', null), '');
    assert.equal(renderJsonPath('{@}', null), 'null');
    assert.equal(renderJsonPath('a{.a}b', undefined), 'ab');
    assert.equal(renderJsonPath('{.a.b}', { a: null }), '');
  });
});

describe('renderJsonPath: malformed templates throw JsonPathError', () => {
  test('is an Error with a name, position and template', () => {
    try {
      renderJsonPath('x{.kind', OBJ);
      assert.fail('expected a throw');
    } catch (err) {
      assert.ok(err instanceof Error);
      assert.ok(err instanceof JsonPathError);
      assert.equal(err.name, 'JsonPathError');
      assert.equal(err.position, 1);
      assert.equal(err.template, 'x{.kind');
      assert.match(err.message, /unclosed "\{"/);
      assert.match(err.message, /x\{\.kind/);
    }
  });

  test('unclosed {', () => {
    throwsAt('{.kind', 0, /unclosed "\{"/);
    throwsAt('text {.status.holder', 5, /unclosed "\{"/);
    throwsAt('{', 0, /unclosed "\{"/);
    throwsAt('{.a{.b}', 0, /unclosed "\{"/);
    throwsAt('{range .status.nodes[*]', 0, /unclosed "\{"/);
  });

  test('unclosed [', () => {
    throwsAt('{.status.nodes[0}', 14, /unclosed "\["/);
    throwsAt('{.status.nodes[0', 14, /unclosed "\["/);
    throwsAt("{.metadata['name}", 11, /unterminated string/);
    throwsAt("{.metadata['name'}", 10, /unclosed "\["/);
    throwsAt('{.status.nodes[*}', 14, /unclosed "\["/);
  });

  test('range without end, end without range', () => {
    throwsAt('{range .status.nodes[*]}{.name}', 0, /\{range\} without a matching \{end\}/);
    throwsAt('a{range .x[*]}{range .y[*]}{end}', 1, /\{range\} without a matching \{end\}/);
    throwsAt('{.kind}{end}', 7, /\{end\} without a matching \{range\}/);
    throwsAt('{range .x[*]}{end}{end}', 18, /\{end\} without a matching \{range\}/);
    throwsAt('{end .x}', 5, /unexpected/);
  });

  test('bad filters', () => {
    throwsAt('{.status.nodes[?(@.name="x")]}', 23, /invalid filter operator "="/);
    throwsAt('{.status.nodes[?(@.name==="x")]}', 23, /invalid filter operator "==="/);
    throwsAt('{.status.nodes[?(@.name=<"x")]}', 23, /invalid filter operator "=<"/);
    throwsAt('{.status.nodes[?(@.name==)]}', 25, /missing operand/);
    throwsAt('{.status.nodes[?()]}', 17, /missing operand/);
    throwsAt('{.status.nodes[?(==1)]}', 17, /missing operand/);
    throwsAt('{.status.nodes[?(@.name=="x"]}', 28, /unexpected "\]" in filter/);
    throwsAt('{.status.nodes[?(@.name=="x")}', 14, /unclosed "\["/);
    throwsAt('{.status.nodes[?(@.name=="x"', 14, /unclosed filter/);
    throwsAt('{.status.nodes[?(@.a=="x" && @.b)]}', 26, /unexpected "&" in filter/);
    throwsAt('{.status.nodes[?(@.name==node)]}', 25, /unknown identifier "node"/);
    throwsAt('{.status.nodes[?@.name]}', 16, /expected "\("/);
    throwsAt('{.status.nodes[?(@.name=="x)]}', 25, /unterminated string/);
  });

  test('bad subscripts', () => {
    throwsAt('{.status.nodes[name]}', 15, /invalid subscript "name"/);
    throwsAt('{.status.nodes[]}', 15, /empty subscript/);
    throwsAt('{.status.nodes[1:2:0]}', 15, /step must be greater than 0/);
    throwsAt('{.status.nodes[::-1]}', 15, /step must be greater than 0/);
    throwsAt('{.status.nodes[1:2:3:4]}', 15, /invalid subscript/);
    throwsAt('{.status.nodes[1.5]}', 15, /invalid subscript/);
    throwsAt('{.status.nodes[0,]}', 17, /empty subscript/);
    throwsAt("{.a['x' 'y']}", 8, /unexpected "'" in subscript/);
  });

  test('bad strings', () => {
    throwsAt('{"abc}', 1, /unterminated string/);
    throwsAt('{"\\q"}', 2, /invalid escape "\\q"/);
    throwsAt('{"\\x4"}', 2, /invalid escape/);
    throwsAt('{"a" "b"}', 5, /unexpected/);
  });

  test('stray identifiers and characters', () => {
    throwsAt('{kind}', 1, /unknown identifier "kind"/);
    throwsAt('{rangex .a}', 1, /unknown identifier "rangex"/);
    throwsAt('{.kind #}', 7, /unexpected "#"/);
    throwsAt('{.a b}', 4, /unexpected "b"/);
    throwsAt('{....name}', 1, /recursive descent/);
    throwsAt('{12abc}', 1, /invalid number/);
    throwsAt('{.a\\', 3, /dangling/);
  });

  test('malformed templates throw whatever the data', () => {
    assert.throws(() => renderJsonPath('{range .a[*]}', undefined), JsonPathError);
    assert.throws(() => renderJsonPath('{.a[}', {}), JsonPathError);
  });
});

/*
 * What `kubectl get -o jsonpath=...` (client-go util/jsonpath behind cli-runtime's JSONPathPrinter)
 * prints for the same object, byte for byte. The objects have the shape and key order of
 * `vipd status -o json` (describeManagementAddress) and `vipd doctor -o json`; kubectl would see
 * them as decoded JSON, whose maps carry no order.
 */
describe('renderJsonPath: byte for byte what kubectl prints', () => {
  const STATIC = {
    apiVersion: 'vipd.io/v1',
    kind: 'ManagementAddress',
    metadata: {
      name: 'management-address',
      cluster: 'lab',
      annotations: {
        'kube-vip.io/vipHost': 'node-2',
        'kube-vip.io/hwaddr': '52:54:00:12:34:02',
        'kube-vip.io/requestedIP': '192.0.2.10',
      },
    },
    spec: { address: '192.0.2.10', mode: 'static', interface: 'eth0' },
    status: {
      held: true,
      address: '192.0.2.10',
      holder: 'node-2',
      holderIP: '192.0.2.12',
      hwaddr: '52:54:00:12:34:02',
      since: '2026-12-07T09:00:00.000Z',
      term: 7,
      message: 'held by node-2',
    },
  };
  const REASON = 'webhook https://lb.example/hook?vip=192.0.2.10&node=node-1: HTTP 502 <html>';
  const DHCP = {
    apiVersion: 'vipd.io/v1',
    kind: 'ManagementAddress',
    metadata: { name: 'management-address', cluster: 'lab', annotations: { 'kube-vip.io/hwaddr': '02:00:5e:10:00:01' } },
    spec: { address: null, mode: 'dhcp', interface: 'eth0', hwaddr: '02:00:5e:10:00:01' },
    status: {
      held: false,
      address: null,
      holder: null,
      holderIP: null,
      hwaddr: '02:00:5e:10:00:01',
      since: null,
      term: null,
      message: `no node holds the VIP; node-1 gave the VIP up: ${REASON}`,
      lastHookFailure: {
        node: 'node-1',
        hook: 'acquire',
        term: 3,
        reason: REASON,
        time: '2026-12-07T09:00:00.000Z',
        cooldownUntil: '2026-12-07T09:05:00.000Z',
      },
      dhcp: {
        holder: 'node-1',
        state: 'released',
        reason: 'gave the VIP up',
        leasedIP: null,
        leaseSeconds: 3600,
        boundAt: null,
        renewAt: null,
        rebindAt: null,
        expiresAt: null,
        updatedAt: '2026-12-07T09:00:00.000Z',
      },
    },
  };
  const DOCTOR = {
    kind: 'DoctorReport',
    verdict: 'warn',
    summary: { ok: 2, warn: 1, fail: 0, skip: 0 },
    checks: [
      { name: 'etcd', verdict: 'ok', detail: '3 members' },
      { name: 'firewall', verdict: 'warn', detail: 'nftables drops ARP', hint: 'allow ARP' },
      { name: 'segment', verdict: 'ok', detail: 'one L2 segment' },
    ],
  };

  test('{.metadata.annotations}: a map prints as json.Marshal does, keys sorted, compact', () => {
    assert.equal(
      r('{.metadata.annotations}', STATIC),
      '{"kube-vip.io/hwaddr":"52:54:00:12:34:02","kube-vip.io/requestedIP":"192.0.2.10","kube-vip.io/vipHost":"node-2"}',
    );
  });

  test('{.metadata.annotations.kube-vip\\.io/vipHost}: a string prints raw; "\\." escapes the dot in a field name', () => {
    assert.equal(r('{.metadata.annotations.kube-vip\\.io/vipHost}', STATIC), 'node-2');
  });

  test("{.metadata.annotations['kube-vip\\.io/hwaddr']}: a quoted key is parsed as the field .kube-vip\\.io/hwaddr", () => {
    assert.equal(r("{.metadata.annotations['kube-vip\\.io/hwaddr']}", STATIC), '52:54:00:12:34:02');
    assert.equal(r("{.metadata.annotations['kube-vip.io/hwaddr']}", STATIC), '52:54:00:12:34:02');
  });

  test('{.spec}: keys sorted by bytes, not in the order vipd built them', () => {
    assert.equal(r('{.spec}', STATIC), '{"address":"192.0.2.10","interface":"eth0","mode":"static"}');
    // null stays null inside JSON; "hwaddr" sorts after "address", before "interface".
    assert.equal(r('{.spec}', DHCP), '{"address":null,"hwaddr":"02:00:5e:10:00:01","interface":"eth0","mode":"dhcp"}');
  });

  test('{.status}: sorted at every depth; integers bare; "held" < "holder" < "holderIP" byte-wise', () => {
    assert.equal(
      r('{.status}', STATIC),
      '{"address":"192.0.2.10","held":true,"holder":"node-2","holderIP":"192.0.2.12","hwaddr":"52:54:00:12:34:02",' +
        '"message":"held by node-2","since":"2026-12-07T09:00:00.000Z","term":7}',
    );
  });

  test('{.status} with nested maps: json.Marshal escapes <, > and & inside JSON, while a bare string prints raw', () => {
    const reason = String.raw`webhook https://lb.example/hook?vip=192.0.2.10\u0026node=node-1: HTTP 502 \u003chtml\u003e`;
    assert.equal(
      r('{.status}', DHCP),
      '{"address":null,' +
        // "leaseSeconds" < "leasedIP" ('S' < 'd'), "reason" < "rebindAt" < "renewAt".
        '"dhcp":{"boundAt":null,"expiresAt":null,"holder":"node-1","leaseSeconds":3600,"leasedIP":null,' +
        '"reason":"gave the VIP up","rebindAt":null,"renewAt":null,"state":"released","updatedAt":"2026-12-07T09:00:00.000Z"},' +
        '"held":false,"holder":null,"holderIP":null,"hwaddr":"02:00:5e:10:00:01",' +
        `"lastHookFailure":{"cooldownUntil":"2026-12-07T09:05:00.000Z","hook":"acquire","node":"node-1","reason":"${reason}",` +
        '"term":3,"time":"2026-12-07T09:00:00.000Z"},' +
        `"message":"no node holds the VIP; node-1 gave the VIP up: ${reason}","since":null,"term":null}`,
    );
    assert.equal(r('{.status.lastHookFailure.reason}', DHCP), REASON);
    // A null leaf prints as "null" (evalToText of a nil interface).
    assert.equal(r('{.status.holder}', DHCP), 'null');
  });

  test('several results in one {} are joined by one space, each printed by its own rule', () => {
    assert.equal(r('{.status.holder} {.status.term}', STATIC), 'node-2 7');
    assert.equal(r('{.status.held}{.status.term}', STATIC), 'true7');
    assert.equal(
      r('{.checks[1:]}', DOCTOR),
      '{"detail":"nftables drops ARP","hint":"allow ARP","name":"firewall","verdict":"warn"} ' +
        '{"detail":"one L2 segment","name":"segment","verdict":"ok"}',
    );
    assert.equal(r('{.summary}', DOCTOR), '{"fail":0,"ok":2,"skip":0,"warn":1}');
  });

  test('{range .checks[*]}{.name}{"\\n"}{end}: the body runs once per match; "\\n" is a Go-quoted literal', () => {
    assert.equal(r('{range .checks[*]}{.name}{"\\n"}{end}', DOCTOR), 'etcd\nfirewall\nsegment\n');
    assert.equal(r('{range .checks[*]}{.name}{"\\t"}{.verdict}{"\\n"}{end}', DOCTOR), 'etcd\tok\nfirewall\twarn\nsegment\tok\n');
    assert.equal(r('{range .checks[?(@.verdict!="ok")]}{.name}: {.hint}{"\\n"}{end}', DOCTOR), 'firewall: allow ARP\n');
  });

  test('Go string escaping inside JSON: control characters, U+2028/U+2029, quotes; "/" stays', () => {
    const value = { s: 'a"b\\c/d\n\t\r\b\f\u0001\u007f\u2028\u2029é😀' };
    assert.equal(r('{@}', value), String.raw`{"s":"a\"b\\c/d\n\t\r\b\f\u0001` + '\u007f' + String.raw`\u2028\u2029` + 'é😀"}');
  });

  test('keys sort by UTF-8 bytes (code points), not UTF-16 units', () => {
    // U+FF5E is below U+1F600 as a code point, above it as a UTF-16 unit (0xD83D).
    assert.equal(r('{@}', { '😀': 1, '～': 2, Z: 3, a: 4 }), '{"Z":3,"a":4,"～":2,"😀":1}');
  });

  test('numbers: integers as int64, other values as Go prints a float64', () => {
    assert.equal(r('{.a}', { a: 3600 }), '3600');
    assert.equal(r('{.a}', { a: 1e15 }), '1000000000000000');
    // fmt %v switches to an exponent at 1e+06 for a float64, json.Marshal only at 1e21.
    assert.equal(r('{.a}', { a: 1234567.5 }), '1.2345675e+06');
    assert.equal(r('{.a}', { a: 0.25 }), '0.25');
    assert.equal(r('{.a}', { a: 0.00001 }), '1e-05');
    assert.equal(r('{.a}', { a: [1234567.5, 0.00001, 1e-7] }), '[1234567.5,0.00001,1e-7]');
  });
});
