/**
 * Calls to this server's `/agp/...` API (the server extension) for the workbench's panels.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** An error of the server extension: its one sentence (`message`), and the HTTP status (0: no answer). */
export class AgpError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

/** The JSON answer of `GET|POST /agp/<path>?<query>`, or an {@link AgpError} with the server's sentence. */
export async function agpJson<T>(path: string, query: Record<string, string> = {}, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  let url = URLExt.join(settings.baseUrl, 'agp', path);
  const search = new URLSearchParams(query).toString();
  if (search) {
    url += '?' + search;
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch {
    throw new AgpError('Your JupyterLab server does not answer; check your connection and try again.', 0);
  }
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      const body = await response.json();
      message = body.message || body.reason || message;
    } catch {
      // not JSON: keep the status
    }
    throw new AgpError(message, response.status);
  }
  return response.status === 204 ? (undefined as T) : response.json();
}

/** A human size: 1.2 MB, 930 B. */
export function humanBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) {
    return '–';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit ? value.toFixed(value < 10 ? 1 : 0) : value} ${units[unit]}`;
}

/** A human count: 1,234,567. */
export function humanCount(n: number | null | undefined): string {
  return n === null || n === undefined ? '–' : n.toLocaleString('en-US');
}

/** An element with a class and text. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}
