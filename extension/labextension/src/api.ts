/**
 * The server extension's jobs API (`/agp/jobs/...`, see extension/jobs.py) and the workspace service's pages.
 */
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export type RunState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'timed_out';
export const ACTIVE_STATES: ReadonlyArray<string> = ['queued', 'running'];

export interface IRun {
  id: number;
  job_id: number;
  job_name: string;
  workspace: string;
  owner: string;
  trigger: string;
  scheduled_for: string | null;
  parameters: Record<string, unknown>;
  state: RunState;
  reason: string | null;
  attempt: number;
  max_attempts: number;
  queued_at: string | null;
  started_at: string | null;
  ended_at: string | null;
  has_output: boolean;
  kind: string;
  filename: string;
  page_url: string | null;
}

export interface IJob {
  id: number;
  name: string;
  schedule: string | null;
  timezone: string;
  next_fire_at: string | null;
}

export interface IJobRequest {
  path: string;
  name?: string;
  parameters?: Record<string, unknown>;
  timeout_seconds?: number;
  max_retries?: number;
  schedule?: string | null;
  timezone?: string | null;
  run_now?: boolean;
}

export interface ILogChunk {
  text: string;
  nextOffset: number;
  state: string;
}

/** An error of the jobs API: the server's one sentence (its `message`), and the HTTP status. */
export class JobsError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

async function call(path: string, init: RequestInit = {}, query: Record<string, string> = {}): Promise<Response> {
  const settings = ServerConnection.makeSettings();
  let url = URLExt.join(settings.baseUrl, 'agp', 'jobs', path);
  const search = new URLSearchParams(query).toString();
  if (search) {
    url += '?' + search;
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new JobsError('Your JupyterLab server does not answer; check your connection and try again.', 0);
  }
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      const body = await response.json();
      message = body.message || body.reason || message;
    } catch {
      // not JSON: keep the status
    }
    throw new JobsError(message, response.status);
  }
  return response;
}

export async function listRuns(limit = 50): Promise<IRun[]> {
  return (await call('runs', {}, { limit: String(limit) })).json();
}

export async function getRun(id: number): Promise<IRun> {
  return (await call(`runs/${id}`)).json();
}

export async function cancelRun(id: number): Promise<IRun> {
  return (await call(`runs/${id}/cancel`, { method: 'POST' })).json();
}

export async function openOutput(id: number): Promise<string> {
  return (await (await call(`runs/${id}/open`, { method: 'POST' })).json()).path;
}

export async function submitJob(request: IJobRequest): Promise<{ job: IJob; run: IRun | null }> {
  return (await call('', { method: 'POST', body: JSON.stringify(request) })).json();
}

export async function readLog(id: number, offset: number): Promise<ILogChunk> {
  const response = await call(`runs/${id}/log`, {}, { offset: String(offset) });
  const text = await response.text();
  const next = Number(response.headers.get('X-Log-Next-Offset'));
  return {
    text,
    nextOffset: Number.isFinite(next) && next > 0 ? next : offset + new TextEncoder().encode(text).length,
    state: response.headers.get('X-Run-State') || 'unknown'
  };
}

let workspace: Promise<string | null> | null = null;

/** This server's workspace (from `/agp/workspace`), or null outside a workspace server. */
export function currentWorkspace(): Promise<string | null> {
  if (!workspace) {
    const settings = ServerConnection.makeSettings();
    workspace = ServerConnection.makeRequest(URLExt.join(settings.baseUrl, 'agp', 'workspace'), {}, settings)
      .then(r => (r.ok ? r.json() : {}) as Promise<{ workspace?: string }>)
      .then(body => body.workspace || null)
      .catch(() => null);
  }
  return workspace;
}

/** The workspace service's address in this browser (`/services/workspaces` under the hub's base), or null. */
export function serviceUrl(): string | null {
  const hubPrefix = PageConfig.getOption('hubPrefix');
  if (!hubPrefix) {
    return null;
  }
  const base = hubPrefix.replace(/hub\/?$/, '');
  return URLExt.join(base || '/', 'services', 'workspaces');
}

/** The run's page in the workspace service (its `page_url` when the service gives one). */
export function runPage(run: IRun): string | null {
  if (run.page_url && (run.page_url.startsWith('/') || /^https?:\/\//.test(run.page_url))) {
    return run.page_url;
  }
  const service = serviceUrl();
  return service ? URLExt.join(service, 'w', encodeURIComponent(run.workspace), 'runs', String(run.id)) : null;
}

export async function jobsPage(): Promise<string | null> {
  const service = serviceUrl();
  const ws = await currentWorkspace();
  return service && ws ? URLExt.join(service, 'w', encodeURIComponent(ws), 'jobs') : null;
}
