// The vipd dashboard: Preact + htm as browser modules served by the agent, no build step.
import { h, render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';

const html = htm.bind(h);
const TOKEN_KEY = 'vipd.token';
const TIMELINE_LENGTH = 50;
// The server sends a heartbeat every 5 s; a silent stream (e.g. the VIP moved under it) is dead.
const STREAM_STALE_MS = 20_000;

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(token, path, init = {}) {
  const headers = { accept: 'application/json', authorization: `Bearer ${token}` };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { ...init, headers, cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'The server cannot be reached.');
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: fall back to the status text below.
  }
  if (!response.ok) throw new ApiError(response.status, body?.message ?? response.statusText);
  return body;
}

/**
 * Server-Sent Events read through fetch, because EventSource cannot send the Authorization
 * header and a token in the URL would end up in logs and history.
 */
async function readEventStream(token, signal, onOpen, onEvent, onData, onChange) {
  const response = await fetch('/v1/events?limit=' + TIMELINE_LENGTH, {
    headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
    cache: 'no-store',
    signal,
  });
  if (!response.ok) {
    let message = response.statusText;
    try {
      message = (await response.json()).message;
    } catch {
      // Keep the status text.
    }
    throw new ApiError(response.status, message);
  }
  onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onData();
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') type = text;
        else if (field === 'data') data.push(text);
      }
      if (type === 'move' && data.length > 0) onEvent(JSON.parse(data.join('\n')));
      // A node started or stopped, its health checks changed verdict, or the DHCP lease changed: the status and node table follow.
      else if ((type === 'node' || type === 'lease' || type === 'health' || type === 'admin') && data.length > 0) onChange();
    }
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// ---- formatting ----

function hostForUrl(address) {
  return address.includes(':') ? `[${address}]` : address;
}

function ago(iso, now) {
  if (!iso) return '';
  const seconds = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (seconds < 5) return 'just now';
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.round(hours / 24)} days ago`;
}

function clock(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  return today ? time : `${date.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

function shortFingerprint(fingerprint) {
  const parts = fingerprint.split(':');
  return parts.length > 8 ? `${parts.slice(0, 4).join(':')} … ${parts.slice(-4).join(':')}` : fingerprint;
}

// ---- components ----

function Logo() {
  return html`<svg class="logo" viewBox="0 0 32 32" aria-hidden="true">
    <rect width="32" height="32" rx="7" fill="#0f172a" />
    <circle cx="16" cy="16" r="9" fill="none" stroke="#34d399" stroke-width="2.5" />
    <circle cx="16" cy="16" r="3.5" fill="#34d399" />
  </svg>`;
}

function SignIn({ error, onSubmit }) {
  const [value, setValue] = useState('');
  const submit = (event) => {
    event.preventDefault();
    const token = value.trim();
    if (token) onSubmit(token);
  };
  return html`<main class="signin">
    <form class="card signin-card" onSubmit=${submit}>
      <div class="brand"><${Logo} /><span>vipd</span></div>
      <h1>Management address dashboard</h1>
      <p class="muted">Enter an API token. Create one on any node with:</p>
      <code class="command">vipd token create --role read --config /etc/vipd/config.yaml</code>
      <p class="muted small">Use <code>--role admin</code> to move the VIP from here. The token is kept in this browser tab only.</p>
      <label for="token">API token</label>
      <input
        id="token"
        name="token"
        type="password"
        autocomplete="off"
        spellcheck="false"
        placeholder="vipd_…"
        value=${value}
        onInput=${(event) => setValue(event.currentTarget.value)}
      />
      ${error && html`<p class="form-error" role="alert">${error}</p>`}
      <button class="primary" type="submit" disabled=${!value.trim()}>Open dashboard</button>
    </form>
  </main>`;
}

function Badge({ tone, children }) {
  return html`<span class=${`badge ${tone}`}><span class="dot"></span>${children}</span>`;
}

function Fact({ label, hint, children, testid }) {
  return html`<div class="fact" data-testid=${testid}>
    <div class="fact-label">${label}${hint && html`<span class="fact-hint">${hint}</span>`}</div>
    <div class="fact-value">${children}</div>
  </div>`;
}

function Header({ cluster, live, onSignOut }) {
  const liveText = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…' }[live];
  return html`<header class="topbar">
    <div class="topbar-inner">
      <div class="brand"><${Logo} /><span>vipd</span>${cluster && html`<span class="cluster">cluster ${cluster}</span>`}</div>
      <div class="topbar-right">
        <span class=${`live ${live}`} data-testid="live"><span class="dot"></span>${liveText}</span>
        <button class="ghost" onClick=${onSignOut}>Sign out</button>
      </div>
    </div>
  </header>`;
}

function Overview({ address, about, now }) {
  const status = address.status;
  // DHCP mode: the address is the lease, which may not exist yet.
  const reachable = status.address ?? address.spec.address;
  const url = reachable ? `https://${hostForUrl(reachable)}` : null;
  const annotations = address.metadata.annotations;
  const lease = status.dhcp ? ` · lease ${status.dhcp.state}` : '';
  const here = about?.node;
  return html`<section class="card overview">
    <div class="overview-head">
      <div>
        <div class="eyebrow">Management address</div>
        ${url
          ? html`<a class="address" href=${url} data-testid="management-url">${url}</a>`
          : html`<div class="address muted" data-testid="management-url">no address yet</div>`}
        ${about?.fqdn
          ? html`<a class="fqdn" href=${`https://${about.fqdn}`} data-testid="fqdn">https://${about.fqdn}</a>`
          : html`<div class="fqdn muted" data-testid="fqdn">No FQDN configured</div>`}
      </div>
      ${status.held
        ? html`<${Badge} tone="ok">Held by ${status.holder}<//>`
        : html`<${Badge} tone="bad">No node holds the VIP<//>`}
    </div>
    <div class="facts">
      <${Fact} label="Holder" testid="holder">
        ${status.held
          ? html`<strong data-testid="holder-name">${status.holder}</strong>
              <span class="mono">${status.holderIP}</span>`
          : html`<strong class="bad-text" data-testid="holder-name">none</strong>`}
      <//>
      <${Fact} label="Holding since" testid="since">
        ${status.since
          ? html`<strong>${ago(status.since, now)}</strong><span class="muted">${clock(status.since)} · term ${status.term}</span>`
          : html`<span class="muted">—</span>`}
      <//>
      <${Fact} label="MAC address" hint="kube-vip.io/hwaddr" testid="mac">
        <strong class="mono">${status.hwaddr ?? annotations['kube-vip.io/hwaddr'] ?? '—'}</strong>
      <//>
      <${Fact} label="Requested IP" hint="kube-vip.io/requestedIP" testid="requested-ip">
        <strong class="mono">${annotations['kube-vip.io/requestedIP'] ?? '—'}</strong>
        <span class="muted">${address.spec.mode}${lease} · ${address.spec.interface}</span>
      <//>
      <${Fact} label="You are on" testid="local-node">
        ${here
          ? html`<strong>${here.name}</strong><span class="mono">${here.ip}</span>
              ${here.name === status.holder && html`<span class="muted">this node holds the VIP</span>`}`
          : html`<span class="muted">—</span>`}
      <//>
      <${Fact} label="Cluster CA" hint="SHA-256" testid="ca">
        ${status.caFingerprint
          ? html`<span class="mono small" title=${status.caFingerprint}>${shortFingerprint(status.caFingerprint)}</span>`
          : html`<span class="muted">—</span>`}
      <//>
    </div>
  </section>`;
}

function NodesCard({ nodes, holder, now, call, onMoved }) {
  return html`<section class="card">
    <div class="card-head">
      <h2>Nodes</h2>
      <span class="muted">${nodes.filter((node) => node.healthy).length} of ${nodes.length} healthy</span>
    </div>
    <div class="table-scroll"><table class="nodes" data-testid="nodes">
      <thead>
        <tr><th>Node</th><th>IP</th><th>Health</th><th>Checks</th><th>Priority</th><th>Last seen</th><th>VIP</th><th>Maintenance</th></tr>
      </thead>
      <tbody>
        ${nodes.map(
          (node) => html`<tr key=${node.name} data-node=${node.name}>
            <td><strong>${node.name}</strong></td>
            <td class="mono">${node.ip}</td>
            <td>${node.healthy ? html`<${Badge} tone="ok">Healthy<//>` : html`<${Badge} tone="bad">Unhealthy<//>`}</td>
            <td data-testid="node-checks"><${Checks} node=${node} now=${now} /></td>
            <td class="mono" data-testid="node-priority">${node.priority ?? '—'}</td>
            <td class="muted">${node.lastSeen ? ago(node.lastSeen, now) : 'never'}</td>
            <td>${node.holdsVip ? html`<span class="holds">Holds the VIP</span>` : ''}</td>
            <td><${CordonControl} node=${node} call=${call} onChanged=${onMoved} /></td>
          </tr>`,
        )}
      </tbody>
    </table></div>
    <${MoveControl} nodes=${nodes} holder=${holder} call=${call} onMoved=${onMoved} />
  </section>`;
}

/**
 * Cordon or uncordon a node (issue 14): a cordoned holder hands the VIP on by a planned move,
 * and a cordoned node takes it only when no uncordoned healthy node runs.
 */
function CordonControl({ node, call, onChanged }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const act = async (method) => {
    setBusy(true);
    setError(null);
    try {
      await call(`/v1/nodes/${encodeURIComponent(node.name)}/cordon`, method === 'POST' ? { method, body: JSON.stringify({}) } : { method });
      onChanged();
    } catch (caught) {
      // The VIP may leave the node that served this page; the status reloads either way.
      if (caught.status === 0) onChanged();
      else setError(caught.message);
    } finally {
      setBusy(false);
    }
  };
  const cordon = node.cordon;
  return html`<span class="cordon" data-testid="cordon-control">
    ${cordon && html`<${Badge} tone="warn">${cordon.strict ? 'Cordoned (strict)' : 'Cordoned'}<//> `}
    ${cordon
      ? html`<button class="ghost" data-testid="uncordon-button" disabled=${busy} title=${`cordoned by ${cordon.by}${cordon.reason ? `: ${cordon.reason}` : ''}`} onClick=${() => act('DELETE')}>Uncordon</button>`
      : html`<button class="ghost" data-testid="cordon-button" disabled=${busy} title="Keep the VIP off this node (maintenance)" onClick=${() => act('POST')}>Cordon</button>`}
    ${error && html`<span class="bad small" role="alert">${error}</span>`}
  </span>`;
}

/** The node's health checks: passing, or which fail and why (issue 13). */
function Checks({ node, now }) {
  if (node.health === 'unknown' || !node.checks) return html`<span class="muted">—</span>`;
  if (node.checks.length === 0) return html`<span class="muted">none</span>`;
  if (node.health === 'passing') {
    return html`<${Badge} tone="ok">${node.checks.length === 1 ? 'Check passes' : `${node.checks.length} checks pass`}<//>`;
  }
  const failing = node.checks.filter((check) => !check.passing);
  return html`<${Badge} tone="bad">Checks fail<//>
    ${failing.map(
      (check) => html`<div class="small" key=${check.name}>
        <strong>${check.name}</strong>: ${check.lastResult ? check.lastResult.detail : 'no result yet'}
        <span class="muted"> (${ago(check.since, now)})</span>
      </div>`,
    )}`;
}

function MoveControl({ nodes, holder, call, onMoved }) {
  const [target, setTarget] = useState('');
  const [phase, setPhase] = useState('idle');
  const [message, setMessage] = useState(null);
  const [awaited, setAwaited] = useState(null);
  const candidates = nodes.filter((node) => node.name !== holder);
  const chosen = candidates.find((node) => node.name === target);

  // The server answers 202 before the holder is asked; the live status tells when it is done.
  useEffect(() => {
    if (awaited && holder === awaited) {
      setMessage({ tone: 'ok', text: `The VIP moved to ${awaited}.` });
      setAwaited(null);
    }
  }, [holder, awaited]);

  const move = async () => {
    setPhase('moving');
    setMessage(null);
    try {
      const answer = await call('/v1/management-address/move', { method: 'POST', body: JSON.stringify({ to: target }) });
      if (answer.state === 'done') {
        setMessage({ tone: 'ok', text: `${target} holds the VIP already.` });
      } else {
        setMessage({ tone: 'ok', text: `Moving the VIP to ${target} (move ${answer.id})…` });
        setAwaited(target);
      }
      setTarget('');
      onMoved();
    } catch (error) {
      if (error.status === 0) {
        // Expected when the VIP leaves the node that served this page: the answer is lost with it.
        setMessage({ tone: 'ok', text: 'The connection dropped as the VIP moved; reloading the status…' });
        onMoved();
      } else {
        const text = error.status === 403 ? 'Moving the VIP needs a token with the admin role.' : error.message;
        setMessage({ tone: 'bad', text });
      }
    }
    setPhase('idle');
  };

  return html`<div class="move" data-testid="move-control">
    <div class="move-title">
      <h3>Planned move</h3>
      <span class="muted">Hand the VIP to another node, e.g. before maintenance.</span>
    </div>
    ${phase === 'confirm'
      ? html`<div class="confirm" role="alertdialog">
          <span>Move the management address from <strong>${holder ?? 'nobody'}</strong> to <strong>${target}</strong>? Connections through the VIP will reconnect.</span>
          <div class="actions">
            <button class="ghost" onClick=${() => setPhase('idle')}>Cancel</button>
            <button class="primary" data-testid="move-confirm" onClick=${move}>Move now</button>
          </div>
        </div>`
      : html`<div class="move-row">
          <select
            aria-label="Target node"
            data-testid="move-target"
            value=${target}
            disabled=${phase === 'moving'}
            onChange=${(event) => setTarget(event.currentTarget.value)}
          >
            <option value="">Choose a node…</option>
            ${candidates.map(
              (node) => html`<option value=${node.name} disabled=${!node.healthy || node.health === 'failing'}>
                ${node.name} (${node.ip})${!node.healthy ? ' — unhealthy' : node.health === 'failing' ? ' — checks failing' : ''}
              </option>`,
            )}
          </select>
          <button
            class="primary"
            data-testid="move-button"
            disabled=${!chosen || !chosen.healthy || phase === 'moving'}
            onClick=${() => setPhase('confirm')}
          >
            ${phase === 'moving' ? html`<span class="spinner"></span>Moving…` : 'Move VIP'}
          </button>
        </div>`}
    ${message && html`<p class=${`move-message ${message.tone}`} role="status">${message.text}</p>`}
  </div>`;
}

function describeMove(event) {
  if (event.from && event.to) return html`<strong>${event.from}</strong><span class="arrow">→</span><strong>${event.to}</strong>`;
  if (event.to) return html`<strong>${event.to}</strong> took the VIP`;
  if (event.from) return html`<strong>${event.from}</strong> released the VIP`;
  return 'no change';
}

function Timeline({ events, now }) {
  const newestFirst = [...events].reverse();
  return html`<section class="card">
    <div class="card-head">
      <h2>Recent moves</h2>
      <span class="muted">updates live</span>
    </div>
    ${newestFirst.length === 0
      ? html`<p class="muted empty">No moves recorded yet.</p>`
      : html`<ol class="timeline" data-testid="timeline">
          ${newestFirst.map(
            (event, index) => html`<li key=${`${event.time}-${event.term}-${index}`} class=${event.to ? 'ok' : 'bad'}>
              <div class="when" title=${event.time}><span>${clock(event.time)}</span><span class="muted">${ago(event.time, now)}</span></div>
              <div class="what">
                <div class="move-line">${describeMove(event)}</div>
                <div class="muted">${event.reason}${event.term !== null ? ` · term ${event.term}` : ''}</div>
              </div>
            </li>`,
          )}
        </ol>`}
  </section>`;
}

function Dashboard({ token, onUnauthorized, onSignOut }) {
  const [address, setAddress] = useState(null);
  const [nodes, setNodes] = useState([]);
  const [about, setAbout] = useState(null);
  const [events, setEvents] = useState([]);
  const [live, setLive] = useState('connecting');
  const [loadError, setLoadError] = useState(null);
  const [now, setNow] = useState(Date.now());
  const unauthorized = useRef(onUnauthorized);
  unauthorized.current = onUnauthorized;

  const call = useCallback(
    async (path, init) => {
      try {
        return await api(token, path, init);
      } catch (error) {
        if (error.status === 401) unauthorized.current();
        throw error;
      }
    },
    [token],
  );

  const refresh = useCallback(async () => {
    try {
      const [nextAddress, nextNodes, nextAbout] = await Promise.all([
        call('/v1/management-address'),
        call('/v1/nodes'),
        call('/v1/about'),
      ]);
      setAddress(nextAddress);
      setNodes(nextNodes.nodes);
      setAbout(nextAbout);
      setLoadError(null);
    } catch (error) {
      if (error.status !== 401) setLoadError(error.message);
    }
  }, [call]);

  // Many events can arrive at once (the history); one refresh covers them all.
  const pending = useRef(null);
  const scheduleRefresh = useCallback(() => {
    if (pending.current) return;
    pending.current = setTimeout(() => {
      pending.current = null;
      refresh();
    }, 100);
  }, [refresh]);

  useEffect(() => {
    refresh();
    const poll = setInterval(refresh, 10_000);
    const tick = setInterval(() => setNow(Date.now()), 1000);
    return () => {
      clearInterval(poll);
      clearInterval(tick);
    };
  }, [refresh]);

  useEffect(() => {
    const stopped = new AbortController();
    (async () => {
      let delay = 1000;
      while (!stopped.signal.aborted) {
        const connection = new AbortController();
        const stop = () => connection.abort();
        stopped.signal.addEventListener('abort', stop);
        let lastData = Date.now();
        const watchdog = setInterval(() => {
          if (Date.now() - lastData > STREAM_STALE_MS) connection.abort();
        }, 5000);
        try {
          await readEventStream(
            token,
            connection.signal,
            () => {
              setLive('live');
              delay = 1000;
              setEvents([]);
              scheduleRefresh();
            },
            (event) => {
              setEvents((list) => [...list, event].slice(-TIMELINE_LENGTH));
              scheduleRefresh();
            },
            () => {
              lastData = Date.now();
            },
            scheduleRefresh,
          );
        } catch (error) {
          if (error.status === 401) {
            unauthorized.current();
            return;
          }
        } finally {
          clearInterval(watchdog);
          stopped.signal.removeEventListener('abort', stop);
        }
        if (stopped.signal.aborted) return;
        setLive('reconnecting');
        await sleep(delay, stopped.signal);
        delay = Math.min(delay * 2, 15_000);
      }
    })();
    return () => stopped.abort();
  }, [token, scheduleRefresh]);

  const warning = address?.status.certificateWarning;
  return html`<div class="page">
    <${Header} cluster=${address?.metadata.cluster} live=${live} onSignOut=${onSignOut} />
    <main class="content">
      ${loadError && html`<div class="banner bad" role="alert">Could not load the status: ${loadError}</div>`}
      ${warning && html`<div class="banner warn" role="status" data-testid="certificate-warning">${warning}</div>`}
      ${address
        ? html`<${Overview} address=${address} about=${about} now=${now} />
            <div class="columns">
              <${NodesCard} nodes=${nodes} holder=${address.status.holder} now=${now} call=${call} onMoved=${refresh} />
              <${Timeline} events=${events} now=${now} />
            </div>`
        : !loadError && html`<div class="card loading"><span class="spinner"></span>Loading the management address…</div>`}
    </main>
  </div>`;
}

function App() {
  const [token, setToken] = useState(() => sessionStorage.getItem(TOKEN_KEY));
  const [error, setError] = useState(null);
  const signOut = useCallback((message) => {
    sessionStorage.removeItem(TOKEN_KEY);
    setToken(null);
    setError(message ?? null);
  }, []);
  if (!token) {
    return html`<${SignIn}
      error=${error}
      onSubmit=${(value) => {
        sessionStorage.setItem(TOKEN_KEY, value);
        setError(null);
        setToken(value);
      }}
    />`;
  }
  return html`<${Dashboard}
    token=${token}
    onUnauthorized=${() => signOut('That token was not accepted: it may be wrong, deleted or expired.')}
    onSignOut=${() => signOut()}
  />`;
}

render(html`<${App} />`, document.getElementById('app'));
