/**
 * The Catalog side panel: the workspace's namespaces first, those of other workspaces the user may read below and
 * marked; tables with row counts and sizes (from the current snapshot's summary), columns with their SQL types,
 * partitioning, snapshots, a data preview, search; drag a table or a column into a cell, or "Insert SELECT" at the
 * cursor. It reads again after a cell that writes the catalog ran. Data: `/agp/catalog/...` (extension/handlers.py).
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { LabIcon, refreshIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { literalSql, putSql } from './cells';
import { agpJson, AgpError, el, humanBytes, humanCount } from './request';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 2C7.6 2 4 3.3 4 5v14c0 1.7 3.6 3 8 3s8-1.3 8-3V5c0-1.7-3.6-3-8-3zm0 2c3.9 0 6 1.1 6 1.5S15.9 7 12 7 6 5.9 6 5.5 8.1 4 12 4zM6 7.8C7.5 8.6 9.7 9 12 9s4.5-.4 6-1.2V12c0 .4-2.1 1.5-6 1.5S6 12.4 6 12V7.8zm0 6.5c1.5.8 3.7 1.2 6 1.2s4.5-.4 6-1.2V19c0 .4-2.1 1.5-6 1.5S6 19.4 6 19v-4.7z"/>
  </g>
</svg>`;
export const catalogIcon = new LabIcon({ name: 'agp:catalog', svgstr: svg });

interface IPage {
  items: string[];
  total: number;
  current?: string | null;
  current_tables?: string[];
}

export interface IColumn {
  id: number;
  name: string;
  type: string;
  sql_type?: string;
  required: boolean;
  doc: string | null;
}

export interface ITableDetail {
  identifier: string[];
  location: string;
  schema: IColumn[];
  partition_spec: { source_id: number; source?: string | null; name: string; transform: string }[];
  snapshots: { snapshot_id: number; timestamp_ms: number; operation: string | null }[];
  current_snapshot_id: number | null;
  stats?: { rows: number | null; data_files: number | null; size_bytes: number | null };
}

interface IPreview {
  columns: string[];
  rows: unknown[][];
}

/** Statements after which the catalog may have changed (as the kernel's `%sql` sees them), and Spark's writes. */
const WRITES = /^\s*(%%?sql\s+)?(create|drop|alter|insert|delete|update|merge|truncate|comment|refresh|execute|call)\b|\.(writeTo|saveAsTable|insertInto)\(|\b(append|overwrite|create_table|drop_table)\(/im;
const DETAIL_CONCURRENCY = 4;
const DETAIL_AHEAD = 60;

/** A SQL identifier as Trino reads it: plain lower-case names as they are, others double-quoted. */
export function quoteName(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : '"' + name.replace(/"/g, '""') + '"';
}

export function tableSqlName(namespace: string, table: string): string {
  return `${quoteName(namespace)}.${quoteName(table)}`;
}

export function selectSql(namespace: string, table: string, columns: string[] = []): string {
  const list = columns.length ? columns.map(quoteName).join(', ') : '*';
  return `SELECT ${list}\nFROM ${tableSqlName(namespace, table)}\nLIMIT 100`;
}

/** The workspace a namespace belongs to (a workspace's namespace is its slug with `_` for `-`). */
function workspaceOf(namespace: string): string {
  return namespace.replace(/_/g, '-');
}

function tablesPath(namespace: string): string {
  return `catalog/namespaces/${encodeURIComponent(namespace)}/tables`;
}

function tablePath(namespace: string, table: string): string {
  return `${tablesPath(namespace)}/${encodeURIComponent(table)}`;
}

export interface ICatalogActions {
  insertSelect(namespace: string, table: string, columns?: string[]): void;
  preview(namespace: string, table: string): void;
}

export class CatalogPanel extends Widget {
  constructor(private readonly actions: ICatalogActions) {
    super();
    this.id = 'agp-catalog-panel';
    this.addClass('agp-catalog-panel');
    this.title.icon = catalogIcon;
    this.title.caption = 'Catalog';
    const header = el('div', 'agp-catalog-header');
    const refresh = el('button', 'jp-Button jp-mod-minimal agp-catalog-refresh');
    refresh.title = 'Read the catalog again';
    refreshIcon.element({ container: refresh });
    refresh.addEventListener('click', () => void this.refresh(true));
    header.append(el('h2', '', 'Catalog'), refresh);
    this._search.type = 'search';
    this._search.className = 'agp-catalog-search jp-mod-styled';
    this._search.placeholder = 'Search tables';
    this._search.addEventListener('input', () => {
      window.clearTimeout(this._searchTimer);
      this._searchTimer = window.setTimeout(() => void this.refresh(), 250);
    });
    const hint = el('div', 'agp-catalog-hint', 'Drag a table or column into a cell to insert its SQL name.');
    this.node.append(header, this._search, hint, this._message, this._tree);
    this._message.className = 'agp-catalog-message';
    this._tree.className = 'agp-catalog-tree';
  }

  /** Reads the namespaces (and the tables of those open) again; `invalidate` first drops the server's cache. */
  async refresh(invalidate = false): Promise<void> {
    const generation = ++this._generation;
    try {
      if (invalidate) {
        await agpJson<void>('catalog/invalidate', {}, { method: 'POST' });
        this._details.clear();
      }
      const search = this._search.value.trim();
      const query: Record<string, string> = { limit: '1000' };
      if (!search) {
        query.with = 'current_tables'; // the workspace's own tables in the same answer: one round trip
      }
      const page = await agpJson<IPage>('catalog/namespaces', query);
      if (!this._loaded && page.current) {
        this._open.add(page.current); // the workspace's own namespace starts open
      }
      const tables = new Map<string, string[]>();
      if (page.current && page.current_tables) {
        tables.set(page.current, page.current_tables);
      }
      const open = page.items.filter(ns => (search || this._open.has(ns)) && !tables.has(ns));
      await Promise.all(
        open.map(async ns => {
          const query: Record<string, string> = { limit: '1000' };
          if (search) {
            query.search = search;
          }
          try {
            tables.set(ns, (await agpJson<IPage>(tablesPath(ns), query)).items);
          } catch {
            tables.set(ns, []); // a namespace that went away or that this user may no longer read
          }
        })
      );
      if (generation !== this._generation) {
        return; // a newer reading is under way
      }
      this._loaded = true;
      this._current = page.current || null;
      this._render(page.items, tables, search);
    } catch (error) {
      this._message.textContent = error instanceof AgpError ? error.message : String(error);
    }
  }

  /** After a cell ran: read again if it may have changed the catalog (now if visible, else when next shown). */
  cellExecuted(source: string): void {
    if (!WRITES.test(source)) {
      return;
    }
    if (this.isVisible) {
      void this.refresh(true);
    } else {
      this._stale = true;
    }
  }

  protected onAfterShow(): void {
    if (!this._loaded || this._stale) {
      void this.refresh(this._stale);
      this._stale = false;
    }
  }

  private _render(namespaces: string[], tables: Map<string, string[]>, search: string): void {
    const mine = namespaces.filter(ns => ns === this._current);
    const others = namespaces.filter(ns => ns !== this._current);
    const visible = (ns: string) => !search || (tables.get(ns) || []).length > 0 || ns.includes(search.toLowerCase());
    const sections: HTMLElement[] = [];
    const section = (title: string, names: string[], other: boolean) => {
      const shown = names.filter(visible);
      if (!shown.length) {
        return;
      }
      sections.push(el('div', 'agp-catalog-section', title));
      const ul = el('ul', 'agp-catalog-list');
      ul.append(...shown.map(ns => this._namespace(ns, tables.get(ns), other, !!search)));
      sections.push(ul);
    };
    section('This workspace', mine, false);
    section('Other workspaces you can read', others, true);
    this._message.textContent = sections.length
      ? ''
      : search
        ? `No table matches “${search}”.`
        : 'No namespace here yet.';
    this._tree.replaceChildren(...sections);
  }

  private _namespace(ns: string, tables: string[] | undefined, other: boolean, searching: boolean): HTMLLIElement {
    const li = el('li', 'agp-catalog-ns');
    li.dataset.namespace = ns;
    const open = tables !== undefined && (searching || this._open.has(ns));
    const row = el('div', 'agp-catalog-row');
    const caret = el('span', 'agp-catalog-caret', open ? '▾' : '▸');
    const name = el('span', 'agp-catalog-name', ns);
    row.append(caret, name);
    if (other) {
      const badge = el('span', 'agp-catalog-badge', 'other');
      badge.title = `Namespace of the workspace ${workspaceOf(ns)}; you may read it`;
      row.append(badge);
      row.title = `Another workspace’s namespace (${workspaceOf(ns)})`;
    } else {
      row.append(el('span', 'agp-catalog-badge agp-catalog-badge-current', 'current'));
    }
    row.addEventListener('click', () => {
      if (this._open.has(ns)) {
        this._open.delete(ns);
      } else {
        this._open.add(ns);
      }
      void this.refresh();
    });
    li.append(row);
    if (open && tables) {
      const ul = el('ul', 'agp-catalog-tables');
      if (!tables.length) {
        ul.append(el('li', 'agp-catalog-empty', searching ? 'No table matches.' : 'No table yet.'));
      }
      ul.append(...tables.map(t => this._table(ns, t)));
      li.append(ul);
      void this._fillStats(ns, tables.slice(0, DETAIL_AHEAD));
    }
    return li;
  }

  private _table(ns: string, table: string): HTMLLIElement {
    const key = `${ns}.${table}`;
    const li = el('li', 'agp-catalog-table');
    li.dataset.table = key;
    const row = el('div', 'agp-catalog-row agp-catalog-draggable');
    row.draggable = true;
    row.title = `${tableSqlName(ns, table)}: drag into a cell`;
    row.addEventListener('dragstart', event => this._drag(event, tableSqlName(ns, table)));
    const open = this._openTables.has(key);
    const caret = el('span', 'agp-catalog-caret', open ? '▾' : '▸');
    const name = el('span', 'agp-catalog-name', table);
    const stats = el('span', 'agp-catalog-stats');
    const detail = this._details.get(key);
    if (detail?.stats) {
      stats.textContent = `${humanCount(detail.stats.rows)} rows · ${humanBytes(detail.stats.size_bytes)}`;
    }
    const select = el('button', 'jp-Button jp-mod-minimal agp-catalog-action agp-catalog-select', 'SELECT');
    select.title = 'Insert SELECT … LIMIT 100 at the cursor of the active notebook';
    select.addEventListener('click', event => {
      event.stopPropagation();
      this.actions.insertSelect(ns, table);
    });
    const preview = el('button', 'jp-Button jp-mod-minimal agp-catalog-action agp-catalog-preview', 'Preview');
    preview.title = 'The first rows of the table';
    preview.addEventListener('click', event => {
      event.stopPropagation();
      this.actions.preview(ns, table);
    });
    const actions = el('span', 'agp-catalog-actions');
    actions.append(select, preview);
    row.append(caret, name, stats, actions);
    row.addEventListener('click', () => {
      if (this._openTables.has(key)) {
        this._openTables.delete(key);
      } else {
        this._openTables.add(key);
      }
      const again = this._table(ns, table);
      li.replaceWith(again);
    });
    li.append(row);
    if (open) {
      const box = el('div', 'agp-catalog-detail', 'Reading…');
      li.append(box);
      void this._detail(ns, table).then(
        d => box.replaceChildren(...this._detailNodes(ns, table, d)),
        error => (box.textContent = (error as Error).message)
      );
    }
    return li;
  }

  private _detailNodes(ns: string, table: string, d: ITableDetail): HTMLElement[] {
    const columns = el('ul', 'agp-catalog-columns');
    columns.append(
      ...d.schema.map(c => {
        const li = el('li', 'agp-catalog-column agp-catalog-draggable');
        li.draggable = true;
        li.dataset.column = c.name;
        li.title = `${c.name} ${c.sql_type || c.type}${c.required ? ' not null' : ''}${c.doc ? ' – ' + c.doc : ''}: drag into a cell`;
        li.addEventListener('dragstart', event => this._drag(event, quoteName(c.name)));
        li.append(el('span', 'agp-catalog-name', c.name), el('span', 'agp-catalog-type', c.sql_type || c.type));
        return li;
      })
    );
    const nodes: HTMLElement[] = [columns];
    const facts = el('dl', 'agp-catalog-facts');
    const fact = (term: string, value: string) => facts.append(el('dt', '', term), el('dd', '', value));
    if (d.stats) {
      fact('Rows', humanCount(d.stats.rows));
      const files = d.stats.data_files;
      fact('Size', `${humanBytes(d.stats.size_bytes)} in ${humanCount(files)} file${files === 1 ? '' : 's'}`);
    }
    fact(
      'Partitioned by',
      d.partition_spec.length
        ? d.partition_spec.map(p => (p.transform === 'identity' ? p.source || p.name : `${p.transform}(${p.source || p.name})`)).join(', ')
        : 'not partitioned'
    );
    const snaps = [...d.snapshots].sort((a, b) => b.timestamp_ms - a.timestamp_ms);
    fact('Snapshots', snaps.length ? `${snaps.length}, last ${new Date(snaps[0].timestamp_ms).toLocaleString()}` : 'none');
    nodes.push(facts);
    if (snaps.length) {
      const list = el('ul', 'agp-catalog-snapshots');
      list.append(
        ...snaps.slice(0, 5).map(s => {
          const li = el('li', '', `${new Date(s.timestamp_ms).toLocaleString()} · ${s.operation || '?'}`);
          li.title = `snapshot ${s.snapshot_id}${s.snapshot_id === d.current_snapshot_id ? ' (current)' : ''}`;
          return li;
        })
      );
      nodes.push(list);
    }
    return nodes;
  }

  private _drag(event: DragEvent, text: string): void {
    if (!event.dataTransfer) {
      return;
    }
    event.dataTransfer.setData('text/plain', literalSql(text));
    event.dataTransfer.effectAllowed = 'copy';
    event.stopPropagation();
  }

  private async _detail(ns: string, table: string): Promise<ITableDetail> {
    const key = `${ns}.${table}`;
    let detail = this._details.get(key);
    if (!detail) {
      detail = await agpJson<ITableDetail>(tablePath(ns, table));
      this._details.set(key, detail);
    }
    return detail;
  }

  /** Row counts and sizes of the tables shown, a few at a time, after the names are on screen. */
  private async _fillStats(ns: string, tables: string[]): Promise<void> {
    const queue = tables.filter(t => !this._details.has(`${ns}.${t}`));
    const worker = async () => {
      for (let t = queue.shift(); t !== undefined; t = queue.shift()) {
        try {
          const d = await this._detail(ns, t);
          const node = this._tree.querySelector(`li.agp-catalog-table[data-table="${CSS.escape(`${ns}.${t}`)}"] .agp-catalog-stats`);
          if (node && d.stats) {
            node.textContent = `${humanCount(d.stats.rows)} rows · ${humanBytes(d.stats.size_bytes)}`;
          }
        } catch {
          // the table's row stays without figures
        }
      }
    };
    await Promise.all(Array.from({ length: DETAIL_CONCURRENCY }, worker));
  }

  private _generation = 0;
  private _searchTimer = 0;
  private _loaded = false;
  private _stale = false;
  private _current: string | null = null;
  private _open = new Set<string>();
  private _openTables = new Set<string>();
  private _details = new Map<string, ITableDetail>();
  private _search = el('input');
  private _message = el('div');
  private _tree = el('div');
}

function previewWidget(ns: string, table: string): MainAreaWidget<Widget> {
  const content = new Widget();
  content.addClass('agp-catalog-preview-view');
  content.node.textContent = 'Reading the first rows…';
  const widget = new MainAreaWidget({ content });
  widget.id = `agp-preview-${ns}-${table}`;
  widget.title.label = `${ns}.${table}`;
  widget.title.icon = catalogIcon;
  widget.title.closable = true;
  void agpJson<IPreview>(`${tablePath(ns, table)}/preview`, { limit: '100' }).then(
    p => {
      const t = el('table', 'agp-catalog-preview-table');
      const head = el('tr');
      head.append(...p.columns.map(c => el('th', '', c)));
      t.append(el('thead'), el('tbody'));
      t.tHead!.append(head);
      for (const r of p.rows) {
        const tr = el('tr');
        tr.append(...r.map(v => el('td', v === null ? 'agp-null' : '', v === null ? 'NULL' : String(v))));
        t.tBodies[0].append(tr);
      }
      const caption = el('div', 'agp-catalog-preview-caption', `First ${p.rows.length} rows of ${tableSqlName(ns, table)}`);
      content.node.replaceChildren(caption, t);
    },
    error => (content.node.textContent = (error as Error).message)
  );
  return widget;
}

export const catalogPlugin: JupyterFrontEndPlugin<void> = {
  id: '@agp/labextension:catalog',
  description: 'The Catalog side panel: namespaces, tables, columns, preview; drag into cells and Insert SELECT.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (app: JupyterFrontEnd, notebooks: INotebookTracker, restorer: ILayoutRestorer | null, palette: ICommandPalette | null) => {
    const insertSelect = 'agp-catalog:insert-select';
    const panel = new CatalogPanel({
      insertSelect: (namespace, table, columns) =>
        void app.commands.execute(insertSelect, { namespace, table, columns: columns || [] }),
      preview: (ns, table) => {
        const existing = app.shell.node.querySelector(`#${CSS.escape(`agp-preview-${ns}-${table}`)}`);
        if (existing) {
          app.shell.activateById(existing.id);
          return;
        }
        app.shell.add(previewWidget(ns, table), 'main');
      }
    });
    app.shell.add(panel, 'left', { rank: 120 });
    if (restorer) {
      restorer.add(panel, 'agp-catalog-panel');
    }
    app.commands.addCommand(insertSelect, {
      label: 'Insert SELECT',
      caption: 'Put %%sql SELECT … FROM the table LIMIT 100 at the cursor of the active notebook',
      execute: args => {
        const ns = String(args.namespace || '');
        const table = String(args.table || '');
        if (ns && table) {
          void putSql(notebooks, selectSql(ns, table, (args.columns as string[]) || []));
        }
      }
    });
    app.commands.addCommand('agp-catalog:open', {
      label: 'Open Catalog panel',
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: 'agp-catalog:open', category: 'Antigravity' });
    NotebookActions.executed.connect((_, { cell }) => {
      if (cell.model.type === 'code') {
        panel.cellExecuted(cell.model.sharedModel.getSource());
      }
    });
  }
};
