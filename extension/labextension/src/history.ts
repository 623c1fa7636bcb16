/**
 * The Query history side panel: the workspace's Trino queries newest first (state, user, time, duration, rows),
 * mine or all, text search, paging; open a query in a new cell, or re-run it there. Data: `/agp/queries`
 * (extension/history.py, forwarded to the workspace service's query history).
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { LabIcon, refreshIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { putSql } from './cells';
import { agpJson, AgpError, el, humanBytes, humanCount } from './request';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M13 3a9 9 0 0 0-9 9H1l3.9 3.9.1.1L9 12H6a7 7 0 1 1 2.1 5l-1.4 1.4A9 9 0 1 0 13 3zm-1 5v5l4.3 2.5.7-1.2-3.5-2.1V8z"/>
  </g>
</svg>`;
export const historyIcon = new LabIcon({ name: 'agp:history', svgstr: svg });

export interface IQueryError {
  name: string | null;
  code: number | null;
  message: string | null;
  line: number | null;
  column: number | null;
}

export interface IQuery {
  query_id: string;
  user: string;
  workspace: string | null;
  query: string;
  state: string;
  error: IQueryError | null;
  created: string | null;
  started: string | null;
  ended: string | null;
  elapsed_ms: number | null;
  rows: number | null;
  bytes: number | null;
  tables_read: string[] | null;
  tables_written: string[] | null;
  source: string | null;
  page_url?: string | null;
}

const PAGE = 25;

export function elapsed(ms: number | null): string {
  if (ms === null || ms === undefined) {
    return '–';
  }
  if (ms < 1000) {
    return `${ms} ms`;
  }
  const s = ms / 1000;
  return s < 60 ? `${s.toFixed(s < 10 ? 1 : 0)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

/** The SQL of a history entry as a `%%sql` cell runs it (a trailing `;` is not SQL to Trino's client). */
export function cellSql(query: string): string {
  return query.trim().replace(/;\s*$/, '');
}

export interface IHistoryActions {
  open(sql: string, run: boolean): void;
}

export class HistoryPanel extends Widget {
  constructor(private readonly actions: IHistoryActions) {
    super();
    this.id = 'agp-history-panel';
    this.addClass('agp-history-panel');
    this.title.icon = historyIcon;
    this.title.caption = 'Query history';
    const header = el('div', 'agp-history-header');
    const refresh = el('button', 'jp-Button jp-mod-minimal agp-history-refresh');
    refresh.title = 'Read the history again';
    refreshIcon.element({ container: refresh });
    refresh.addEventListener('click', () => void this.refresh());
    header.append(el('h2', '', 'Query history'), refresh);
    const filters = el('div', 'agp-history-filters');
    for (const [value, label] of [
      ['mine', 'Mine'],
      ['all', 'All']
    ]) {
      const b = el('button', 'jp-Button jp-mod-minimal agp-history-who', label);
      b.dataset.who = value;
      b.addEventListener('click', () => {
        this._who = value;
        this._offset = 0;
        void this.refresh();
      });
      filters.append(b);
    }
    this._search.type = 'search';
    this._search.className = 'agp-history-search jp-mod-styled';
    this._search.placeholder = 'Search query text';
    this._search.addEventListener('input', () => {
      window.clearTimeout(this._searchTimer);
      this._searchTimer = window.setTimeout(() => {
        this._offset = 0;
        void this.refresh();
      }, 300);
    });
    filters.append(this._search);
    const pager = el('div', 'agp-history-pager');
    this._prev.className = 'jp-Button jp-mod-minimal agp-history-prev';
    this._prev.textContent = '‹ Newer';
    this._prev.addEventListener('click', () => {
      this._offset = Math.max(0, this._offset - PAGE);
      void this.refresh();
    });
    this._next.className = 'jp-Button jp-mod-minimal agp-history-next';
    this._next.textContent = 'Older ›';
    this._next.addEventListener('click', () => {
      this._offset += PAGE;
      void this.refresh();
    });
    this._count.className = 'agp-history-count';
    pager.append(this._prev, this._count, this._next);
    this._message.className = 'agp-history-message';
    this._list.className = 'agp-history-list';
    this.node.append(header, filters, pager, this._message, this._list);
  }

  async refresh(): Promise<void> {
    const generation = ++this._generation;
    this.node.querySelectorAll<HTMLButtonElement>('.agp-history-who').forEach(b => {
      b.classList.toggle('agp-mod-selected', b.dataset.who === this._who);
    });
    const query: Record<string, string> = { limit: String(PAGE), offset: String(this._offset) };
    if (this._who === 'mine') {
      query.mine = '1';
    }
    if (this._search.value.trim()) {
      query.q = this._search.value.trim();
    }
    try {
      const page = await agpJson<{ items: IQuery[]; total: number }>('queries', query);
      if (generation !== this._generation) {
        return;
      }
      this._loaded = true;
      this._message.textContent = page.items.length
        ? ''
        : this._search.value.trim()
          ? 'No query matches.'
          : 'No query yet: run a %sql cell and it appears here.';
      this._list.replaceChildren(...page.items.map(q => this._item(q)));
      const last = this._offset + page.items.length;
      this._count.textContent = page.total ? `${this._offset + 1}–${last} of ${humanCount(page.total)}` : '';
      this._prev.disabled = this._offset === 0;
      this._next.disabled = last >= page.total;
    } catch (error) {
      this._message.textContent = error instanceof AgpError ? error.message : String(error);
    }
  }

  /** After a cell ran: its queries are recorded a moment after they end, so read again shortly after. */
  cellExecuted(): void {
    if (!this.isVisible) {
      this._stale = true;
      return;
    }
    window.clearTimeout(this._soon);
    this._soon = window.setTimeout(() => void this.refresh(), 1500);
  }

  protected onAfterShow(): void {
    if (!this._loaded || this._stale) {
      this._stale = false;
      void this.refresh();
    }
  }

  dispose(): void {
    window.clearTimeout(this._soon);
    window.clearTimeout(this._searchTimer);
    super.dispose();
  }

  private _item(q: IQuery): HTMLLIElement {
    const li = el('li', 'agp-history-query');
    li.dataset.queryId = q.query_id;
    const top = el('div', 'agp-history-top');
    const state = el('span', `agp-history-state agp-history-state-${q.state.toLowerCase()}`, q.state.toLowerCase());
    const when = q.created ? new Date(q.created) : null;
    const time = el('span', 'agp-history-time', when ? when.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' }) : '–');
    time.title = q.query_id;
    top.append(state, time);
    const sql = el('pre', 'agp-history-sql', q.query);
    sql.title = q.query;
    const meta = el(
      'div',
      'agp-history-meta',
      `${q.user} · ${elapsed(q.elapsed_ms)} · ${humanCount(q.rows)} rows` + (q.bytes ? ` · ${humanBytes(q.bytes)}` : '') + (q.source ? ` · ${q.source}` : '')
    );
    li.append(top, sql, meta);
    if (q.error) {
      const where = q.error.line ? ` (line ${q.error.line}${q.error.column ? `, column ${q.error.column}` : ''})` : '';
      li.append(el('div', 'agp-history-error', `${q.error.name || 'Error'}${where}: ${q.error.message || ''}`));
    }
    const actions = el('div', 'agp-history-actions');
    const open = el('button', 'jp-Button jp-mod-minimal agp-history-open', 'Open in cell');
    open.title = 'A new %%sql cell below the active one, with this query';
    open.addEventListener('click', () => this.actions.open(cellSql(q.query), false));
    const rerun = el('button', 'jp-Button jp-mod-minimal agp-history-rerun', 'Re-run');
    rerun.title = 'A new %%sql cell below the active one, with this query, run';
    rerun.addEventListener('click', () => this.actions.open(cellSql(q.query), true));
    actions.append(open, rerun);
    if (q.page_url && q.page_url.startsWith('/') && !q.page_url.startsWith('//')) {
      const link = el('a', 'agp-history-page', 'Details ↗');
      link.href = q.page_url;
      link.target = '_blank';
      link.rel = 'noopener';
      link.title = "The query's entry in the workspace's history: full text, tables, times";
      actions.append(link);
    }
    li.append(actions);
    return li;
  }

  private _generation = 0;
  private _offset = 0;
  private _who = 'mine';
  private _loaded = false;
  private _stale = false;
  private _soon = 0;
  private _searchTimer = 0;
  private _search = el('input');
  private _prev = el('button');
  private _next = el('button');
  private _count = el('span');
  private _message = el('div');
  private _list = el('ul');
}

export const historyPlugin: JupyterFrontEndPlugin<void> = {
  id: '@agp/labextension:history',
  description: "The workspace's query history: filter, search, open in a cell, re-run.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (app: JupyterFrontEnd, notebooks: INotebookTracker, restorer: ILayoutRestorer | null, palette: ICommandPalette | null) => {
    const panel = new HistoryPanel({
      open: (sql, run) => void putSql(notebooks, sql, { run, newCell: true })
    });
    app.shell.add(panel, 'left', { rank: 130 });
    if (restorer) {
      restorer.add(panel, 'agp-history-panel');
    }
    app.commands.addCommand('agp-history:open', {
      label: 'Open Query history',
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: 'agp-history:open', category: 'Antigravity' });
    NotebookActions.executed.connect((_, { cell }) => {
      if (cell.model.type === 'code') {
        panel.cellExecuted();
      }
    });
  }
};
