/**
 * `%sql` results as an interactive grid, with a chart builder (the kernel side is agp.kernels.grid).
 *
 * The kernel's display of a result carries `application/vnd.agp.table.v1+json`: names, Trino types, the first rows
 * and the row count. This renderer shows those rows at once; while the kernel still holds the result it asks it,
 * over a comm, for the rest: windows of rows as the grid scrolls, sorted and filtered over the whole result, chart
 * data, and CSV and Parquet files. Without the kernel (restarted, the notebook opened later) the embedded rows are
 * sorted, filtered and downloaded in the browser, and the grid says that it shows only those.
 *
 * The grid is AG Grid Community (MIT): its infinite row model scrolls over a result of any length while holding a
 * bounded number of row blocks, sorts and filters through a datasource (the kernel) and brings column filters,
 * keyboard navigation and CSV export; @lumino/datagrid, JupyterLab's own, scrolls as well but has no sorting or
 * filtering UI, which would have to be written here. AG Grid is loaded on the first result shown, not at start.
 * Charts are Vega-Lite specs rendered by JupyterLab's own Vega renderer (@jupyterlab/vega5-extension), through the
 * rendermime registry: nothing of Vega is bundled here.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { JSONObject, PromiseDelegate } from '@lumino/coreutils';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import type * as AG from 'ag-grid-community';

export const MIME = 'application/vnd.agp.table.v1+json';
const COMM_TARGET = 'agp.table.v1';
const VEGALITE = 'application/vnd.vegalite.v5+json';
const BLOCK = 200; // rows per request of the grid to the kernel
const ROW_HEIGHT = 28;

type Kind = 'number' | 'date' | 'boolean' | 'text';
type Value = string | number | boolean | null;

interface IColumn {
  name: string;
  type: string;
  kind: Kind;
}

/** The kernel's payload (agp.kernels.grid.bundle). */
interface ITable {
  version: number;
  result: string;
  columns: IColumn[];
  rows: Value[][];
  total: number | null;
  embedded: number;
}

interface IReply {
  reply?: number | null;
  error?: string;
  rows?: Value[][];
  total?: number | null;
  capped?: boolean;
  values?: JSONObject[];
  note?: string | null;
  agg?: string;
  format?: string;
  ready?: boolean;
}

const fmt = (n: number) => n.toLocaleString('en-US');

/** A comm to the kernel's `agp.table.v1` target for one result: numbered requests, each answered once. */
class ResultComm {
  private comm: Kernel.IComm;
  private next = 1;
  private pending = new Map<number, PromiseDelegate<{ reply: IReply; buffers: DataView[] }>>();
  readonly ready = new PromiseDelegate<boolean>();
  closed = false;

  /** ``onLost``: called once when a comm the kernel had answered closes (the kernel restarted, shut down, died). */
  constructor(
    kernel: Kernel.IKernelConnection,
    result: string,
    private onLost: () => void
  ) {
    this.comm = kernel.createComm(COMM_TARGET);
    this.comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => {
      const data = msg.content.data as unknown as IReply;
      const buffers = (msg.buffers || []).map(b =>
        b instanceof ArrayBuffer ? new DataView(b) : new DataView(b.buffer, b.byteOffset, b.byteLength)
      );
      if (data.reply === null || data.reply === undefined) {
        this.answered = !!data.ready;
        this.ready.resolve(!!data.ready);
        return;
      }
      const waiting = this.pending.get(data.reply);
      this.pending.delete(data.reply);
      waiting?.resolve({ reply: data, buffers });
    };
    this.comm.onClose = () => this.fail();
    kernel.disposed.connect(() => this.fail());
    kernel.statusChanged.connect((_, status) => {
      // 'starting' too: a kernel restarted from elsewhere (the REST API, another tab) may show only that.
      if (['restarting', 'autorestarting', 'starting', 'terminating', 'dead'].includes(status)) {
        this.fail();
      }
    });
    this.comm.open({ result });
  }

  private answered = false;

  private fail(): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this.ready.resolve(false);
    if (this.answered) {
      this.onLost();
    }
    for (const waiting of this.pending.values()) {
      waiting.resolve({ reply: { error: 'gone' }, buffers: [] });
    }
    this.pending.clear();
  }

  async request(data: JSONObject): Promise<{ reply: IReply; buffers: DataView[] }> {
    if (this.closed) {
      return { reply: { error: 'gone' }, buffers: [] };
    }
    const number = this.next++;
    const waiting = new PromiseDelegate<{ reply: IReply; buffers: DataView[] }>();
    this.pending.set(number, waiting);
    this.comm.send({ ...data, request: number });
    return waiting.promise;
  }

  dispose(): void {
    this.answered = false; // closed by us: nothing is lost
    if (!this.closed && !this.comm.isDisposed) {
      this.closed = true;
      try {
        this.comm.close();
      } catch {
        // the kernel is gone already
      }
    }
  }
}

/** The AG Grid module, loaded (once) when the first result is shown. */
let agGrid: Promise<typeof AG> | null = null;
const loadGrid = () => (agGrid = agGrid || import('ag-grid-community'));

/** AG Grid's Quartz theme in JupyterLab's colours (its CSS variables: light and dark themes alike). */
function theme(ag: typeof AG): AG.Theme {
  return ag.themeQuartz.withParams({
    backgroundColor: 'var(--jp-layout-color0)',
    foregroundColor: 'var(--jp-ui-font-color1)',
    textColor: 'var(--jp-content-font-color1)',
    headerBackgroundColor: 'var(--jp-layout-color2)',
    headerTextColor: 'var(--jp-ui-font-color1)',
    oddRowBackgroundColor: 'var(--jp-layout-color1)',
    borderColor: 'var(--jp-border-color2)',
    accentColor: 'var(--jp-brand-color1)',
    chromeBackgroundColor: 'var(--jp-layout-color1)',
    fontFamily: 'var(--jp-code-font-family)',
    headerFontFamily: 'var(--jp-ui-font-family)',
    fontSize: 12,
    rowHeight: ROW_HEIGHT,
    headerHeight: 40,
    spacing: 5,
    wrapperBorderRadius: 2
  });
}

/** The header of a column: its name, and its SQL type under it. */
class TypedHeader implements AG.IInnerHeaderComponent {
  private node = document.createElement('div');

  init(params: AG.IHeaderParams & { sqlType?: string }): void {
    this.node.className = 'agp-ResultGrid-header';
    const name = document.createElement('span');
    name.className = 'agp-ResultGrid-headerName';
    name.textContent = params.displayName;
    const type = document.createElement('span');
    type.className = 'agp-ResultGrid-headerType';
    type.textContent = params.sqlType || '';
    this.node.append(name, type);
  }

  getGui(): HTMLElement {
    return this.node;
  }

  refresh(): boolean {
    return false;
  }
}

const asNumber = (v: Value) => (v === null || v === '' ? null : typeof v === 'number' ? v : Number(v));

function compare(kind: Kind) {
  return (a: Value, b: Value) => {
    if (a === null || a === undefined) {
      return b === null || b === undefined ? 0 : 1;
    }
    if (b === null || b === undefined) {
      return -1;
    }
    if (kind === 'number') {
      return (asNumber(a) as number) - (asNumber(b) as number);
    }
    return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
  };
}

function columnDefs(columns: IColumn[]): AG.ColDef[] {
  return columns.map((c, i) => ({
    colId: `c${i}`,
    field: `c${i}`,
    headerName: c.name,
    headerTooltip: `${c.name}: ${c.type}`,
    headerComponentParams: { innerHeaderComponent: TypedHeader, innerHeaderComponentParams: { sqlType: c.type } },
    filter: c.kind === 'number' ? 'agNumberColumnFilter' : c.kind === 'date' ? 'agDateColumnFilter' : 'agTextColumnFilter',
    filterParams: {
      maxNumConditions: 2,
      // In the browser (the embedded rows): numbers sent as text (big integers, decimals) compare as numbers,
      // dates and timestamps by their day, as the kernel does.
      ...(c.kind === 'number' ? { numberParser: (t: string | null) => (t === null || t === '' ? null : Number(t)) } : {}),
      ...(c.kind === 'date'
        ? {
            comparator: (day: Date, cell: Value) => {
              if (cell === null) {
                return -1;
              }
              const d = new Date(String(cell).slice(0, 10) + 'T00:00:00');
              return d < day ? -1 : d > day ? 1 : 0;
            }
          }
        : {})
    },
    comparator: compare(c.kind),
    type: c.kind === 'number' ? 'rightAligned' : undefined,
    cellDataType: false, // values are shown as the kernel sent them, never inferred
    // A row of the infinite model still loading has no data yet: blank, not NULL.
    valueFormatter: (p: AG.ValueFormatterParams) =>
      !p.data ? '' : p.value === null || p.value === undefined ? 'NULL' : String(p.value),
    cellClassRules: { 'agp-ResultGrid-null': (p: AG.CellClassParams) => !!p.data && p.value === null }
  }));
}

function asObjects(rows: Value[][]): Record<string, Value>[] {
  return rows.map(row => Object.fromEntries(row.map((v, i) => [`c${i}`, v])));
}

function download(data: BlobPart, type: string, name: string): void {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function csvOf(columns: IColumn[], rows: Value[][]): string {
  const cell = (v: Value) => {
    const s = v === null ? '' : String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [columns.map(c => cell(c.name)), ...rows.map(r => r.map(cell))].map(r => r.join(',')).join('\n') + '\n';
}

/** Where a rendered output lives: the kernel of the notebook that shows it. */
export type KernelOf = (node: HTMLElement) => Kernel.IKernelConnection | null;

/** One result's grid, toolbar and chart builder. */
export class ResultGrid extends Widget implements IRenderMime.IRenderer {
  private table: ITable | null = null;
  private comm: ResultComm | null = null;
  private api: AG.GridApi | null = null;
  private live = false;
  private known: number | null = null; // rows in the grid's current view, when known
  private status = document.createElement('span');
  private note = document.createElement('div');
  private gridNode = document.createElement('div');
  private chartPanel = document.createElement('div');
  private chartOutput = new Widget();
  private chartRenderer: IRenderMime.IRenderer | null = null;
  private buttons: Record<string, HTMLButtonElement> = {};

  constructor(
    private kernelOf: KernelOf,
    private rendermime: IRenderMimeRegistry
  ) {
    super();
    this.addClass('agp-ResultGrid');
    // The grid's keys (arrows, Ctrl+C, typing in a filter) are the grid's, not the notebook's shortcuts.
    this.node.setAttribute('data-lm-suppress-shortcuts', '');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this.table = model.data[MIME] as unknown as ITable;
    this.known = this.table.total;
    this.build();
    const ag = await loadGrid();
    this.showEmbedded(ag);
    if (this.isAttached) {
      void this.connect();
    }
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.table && !this.comm) {
      void this.connect();
    }
  }

  dispose(): void {
    this.api?.destroy();
    this.comm?.dispose();
    this.chartRenderer?.dispose();
    super.dispose();
  }

  private get whole(): boolean {
    return !!this.table && this.table.total !== null && this.table.embedded >= this.table.total;
  }

  private build(): void {
    const t = this.table!;
    this.node.textContent = '';
    const bar = document.createElement('div');
    bar.className = 'agp-ResultGrid-toolbar';
    this.status.className = 'agp-ResultGrid-status';
    const button = (key: string, label: string, title: string, click: () => void) => {
      const b = document.createElement('button');
      b.className = 'jp-Button jp-mod-minimal agp-ResultGrid-button';
      b.textContent = label;
      b.title = title;
      b.dataset.action = key;
      b.addEventListener('click', click);
      this.buttons[key] = b;
      return b;
    };
    bar.append(
      this.status,
      button('chart', 'Chart', 'Build a chart of this result', () => this.toggleChart()),
      button('copy', 'Copy', 'Copy the selected rows (or the rows in view) as tab-separated text', () => void this.copy()),
      button('csv', 'CSV', 'Download the result, as sorted and filtered, as CSV', () => void this.download('csv')),
      button('parquet', 'Parquet', 'Download the result, as sorted and filtered, as Parquet', () =>
        void this.download('parquet')
      )
    );
    this.buttons.parquet.disabled = true; // until the kernel says it holds the result
    this.gridNode.className = 'agp-ResultGrid-grid';
    const rows = Math.max(1, Math.min(t.total ?? 12, 12));
    this.gridNode.style.height = `${40 + 36 + rows * ROW_HEIGHT + 18}px`; // header, filters, rows, scrollbar
    this.note.className = 'agp-ResultGrid-note';
    this.chartPanel.className = 'agp-ResultGrid-chart';
    this.chartPanel.hidden = true;
    this.node.append(bar, this.gridNode, this.note, this.chartPanel);
    this.updateStatus();
  }

  private updateStatus(): void {
    const t = this.table!;
    const cols = `${t.columns.length} column${t.columns.length === 1 ? '' : 's'}`;
    let rows: string;
    if (this.live) {
      rows = this.known === null ? `${fmt(t.embedded)}+ rows` : `${fmt(this.known)} rows`;
    } else {
      rows = this.whole ? `${fmt(t.embedded)} rows` : `${fmt(t.embedded)} of ${t.total === null ? 'more' : fmt(t.total)} rows`;
    }
    this.status.textContent = `${rows} · ${cols}`;
  }

  private say(text: string): void {
    this.note.textContent = text;
    this.note.hidden = !text;
  }

  /** The embedded rows, sorted and filtered in the browser. */
  private showEmbedded(ag: typeof AG): void {
    const t = this.table!;
    this.api?.destroy();
    this.live = false;
    this.api = ag.createGrid(
      this.gridNode,
      {
        theme: theme(ag),
        columnDefs: columnDefs(t.columns),
        defaultColDef: { sortable: true, resizable: true, floatingFilter: true, minWidth: 110 },
        rowData: asObjects(t.rows),
        rowSelection: { mode: 'multiRow', checkboxes: false, headerCheckbox: false, enableClickSelection: true },
        onCellKeyDown: e => this.copyCell(e as AG.CellKeyDownEvent),
        onFilterChanged: () => this.afterFilter(),
        onFirstDataRendered: p => p.api.autoSizeAllColumns()
      },
      {
        modules: [
          ag.ClientSideRowModelModule,
          ag.ClientSideRowModelApiModule, // forEachNodeAfterFilterAndSort: the CSV of the embedded rows
          ag.TextFilterModule,
          ag.NumberFilterModule,
          ag.DateFilterModule,
          ag.CsvExportModule,
          ag.RowSelectionModule,
          ag.CellStyleModule,
          ag.TooltipModule,
          ag.ColumnAutoSizeModule,
          ag.ColumnApiModule, // getColumnState: the sort a download or chart follows
          ag.RowApiModule // the displayed rows: what Copy copies, the count after a filter
        ]
      }
    );
    this.updateStatus();
    this.say(this.whole ? '' : 'Showing the rows stored in the notebook; asking the kernel for the rest…');
  }

  private afterFilter(): void {
    if (!this.live && this.api && this.whole) {
      const shown = this.api.getDisplayedRowCount();
      this.status.textContent = `${fmt(shown)} of ${fmt(this.table!.embedded)} rows · ${this.table!.columns.length} columns`;
    }
  }

  /** The whole result from the kernel: windows of rows as the grid scrolls, sorted and filtered there. */
  private showLive(ag: typeof AG): void {
    const t = this.table!;
    const comm = this.comm!;
    this.api?.destroy();
    this.live = true;
    const datasource: AG.IDatasource = {
      getRows: params => {
        void comm
          .request({
            op: 'rows',
            result: t.result,
            offset: params.startRow,
            limit: params.endRow - params.startRow,
            sort: params.sortModel as unknown as JSONObject[],
            filter: params.filterModel as JSONObject
          } as JSONObject)
          .then(({ reply }) => {
            if (reply.error) {
              params.failCallback();
              this.lost(reply.error);
              return;
            }
            const rows = reply.rows || [];
            const last =
              reply.total !== null && reply.total !== undefined
                ? reply.total
                : rows.length < params.endRow - params.startRow
                  ? params.startRow + rows.length
                  : -1;
            if (last >= 0) {
              this.known = last;
            }
            params.successCallback(asObjects(rows), last);
            this.updateStatus();
            this.say(reply.capped ? 'Sorting, filtering and downloads cover the rows the kernel read (ResultGrid.max_rows).' : '');
          });
      }
    };
    this.api = ag.createGrid(
      this.gridNode,
      {
        theme: theme(ag),
        columnDefs: columnDefs(t.columns),
        defaultColDef: { sortable: true, resizable: true, floatingFilter: true, minWidth: 110 },
        rowModelType: 'infinite',
        datasource,
        cacheBlockSize: BLOCK,
        maxBlocksInCache: 50, // the browser holds at most 10,000 rows of a result, whatever its length
        infiniteInitialRowCount: t.total ?? t.embedded + 1,
        rowSelection: { mode: 'multiRow', checkboxes: false, headerCheckbox: false, enableClickSelection: true },
        onCellKeyDown: e => this.copyCell(e as AG.CellKeyDownEvent),
        onFirstDataRendered: p => p.api.autoSizeAllColumns()
      },
      {
        modules: [
          ag.InfiniteRowModelModule,
          ag.TextFilterModule,
          ag.NumberFilterModule,
          ag.DateFilterModule,
          ag.RowSelectionModule,
          ag.CellStyleModule,
          ag.TooltipModule,
          ag.ColumnAutoSizeModule,
          ag.ColumnApiModule, // getColumnState: the sort a download or chart follows
          ag.RowApiModule // the displayed rows: what Copy copies, the count after a filter
        ]
      }
    );
    this.updateStatus();
    this.say('');
  }

  private async connect(): Promise<void> {
    const t = this.table!;
    const kernel = this.kernelOf(this.node);
    if (!kernel) {
      this.offline();
      return;
    }
    this.comm = new ResultComm(kernel, t.result, () => this.lost('gone'));
    const ready = await this.comm.ready.promise;
    if (!ready || this.isDisposed) {
      this.offline();
      return;
    }
    this.buttons.parquet.disabled = false;
    if (!this.whole) {
      this.showLive(await loadGrid());
    }
  }

  /** The kernel does not hold the result (any more): what was embedded stays, and says so. */
  private offline(): void {
    const t = this.table!;
    this.buttons.parquet.disabled = true;
    this.buttons.parquet.title = 'Parquet comes from the kernel, which no longer holds this result: run the cell again';
    if (!this.whole) {
      const of = t.total === null ? '' : ` of ${fmt(t.total)}`;
      this.say(
        `The kernel no longer holds this result: showing the ${fmt(t.embedded)}${of} rows stored in the notebook. ` +
          'Run the cell again for all of them.'
      );
    }
  }

  private lost(error: string): void {
    if (this.isDisposed) {
      return;
    }
    if (error === 'gone') {
      this.comm?.dispose();
      if (!this.live) {
        this.offline(); // the embedded rows are shown already
        return;
      }
      void loadGrid().then(ag => {
        this.showEmbedded(ag);
        this.offline();
      });
    } else {
      this.say(error);
    }
  }

  private sortModel(): JSONObject[] {
    return (this.api?.getColumnState() || [])
      .filter(c => c.sort)
      .sort((a, b) => (a.sortIndex ?? 0) - (b.sortIndex ?? 0))
      .map(c => ({ colId: c.colId, sort: c.sort as string }));
  }

  private async download(format: 'csv' | 'parquet'): Promise<void> {
    const name = `result.${format}`;
    if (this.comm && !this.comm.closed && (this.live || format === 'parquet')) {
      this.say(`Preparing ${format === 'csv' ? 'CSV' : 'Parquet'}…`);
      const { reply, buffers } = await this.comm.request({
        op: 'download',
        format,
        result: this.table!.result,
        sort: this.sortModel(),
        filter: (this.api?.getFilterModel() || {}) as JSONObject
      });
      if (reply.error || !buffers.length) {
        this.lost(reply.error || 'The kernel sent no file.');
        return;
      }
      download(buffers[0] as DataView<ArrayBuffer>, format === 'csv' ? 'text/csv' : 'application/vnd.apache.parquet', name);
      this.say(reply.capped ? 'The file has the rows the kernel read (ResultGrid.max_rows).' : '');
      return;
    }
    if (format === 'csv' && this.api) {
      // The embedded rows, as sorted and filtered in the grid.
      const rows: Value[][] = [];
      this.api.forEachNodeAfterFilterAndSort(node => {
        rows.push(this.table!.columns.map((_, i) => (node.data as Record<string, Value>)[`c${i}`]));
      });
      download(csvOf(this.table!.columns, rows), 'text/csv', name);
    }
  }

  private copyCell(e: AG.CellKeyDownEvent): void {
    const key = e.event as KeyboardEvent | undefined;
    if (key && (key.ctrlKey || key.metaKey) && key.key.toLowerCase() === 'c' && !window.getSelection()?.toString()) {
      void navigator.clipboard.writeText(e.value === null || e.value === undefined ? '' : String(e.value));
    }
  }

  private async copy(): Promise<void> {
    if (!this.api) {
      return;
    }
    const cols = this.table!.columns;
    let nodes = this.api.getSelectedNodes();
    if (!nodes.length) {
      nodes = [];
      for (let i = this.api.getFirstDisplayedRowIndex(); i <= this.api.getLastDisplayedRowIndex(); i++) {
        const node = this.api.getDisplayedRowAtIndex(i);
        if (node?.data) {
          nodes.push(node);
        }
      }
    }
    const text = [cols.map(c => c.name), ...nodes.map(n => cols.map((_, i) => (n.data as Record<string, Value>)[`c${i}`]))]
      .map(r => r.map(v => (v === null ? '' : String(v))).join('\t'))
      .join('\n');
    await navigator.clipboard.writeText(text);
    this.say(`Copied ${fmt(nodes.length)} row${nodes.length === 1 ? '' : 's'}.`);
  }

  // -- charts --------------------------------------------------------------------------------------------------

  private toggleChart(): void {
    this.chartPanel.hidden = !this.chartPanel.hidden;
    if (!this.chartPanel.hidden && !this.chartPanel.firstChild) {
      this.buildChartForm();
    }
  }

  private buildChartForm(): void {
    const cols = this.table!.columns;
    const form = document.createElement('div');
    form.className = 'agp-ResultGrid-chartForm';
    const select = (label: string, options: [string, string][], value?: string) => {
      const wrap = document.createElement('label');
      wrap.textContent = label + ' ';
      const s = document.createElement('select');
      s.className = 'jp-mod-styled';
      s.dataset.field = label;
      for (const [v, text] of options) {
        const o = document.createElement('option');
        o.value = v;
        o.textContent = text;
        s.appendChild(o);
      }
      if (value !== undefined) {
        s.value = value;
      }
      wrap.appendChild(s);
      form.appendChild(wrap);
      return s;
    };
    const numeric = cols.map((c, i) => [c, i] as const).filter(([c]) => c.kind === 'number');
    const firstText = cols.findIndex(c => c.kind !== 'number');
    const kind = select('Chart', [
      ['bar', 'Bar'],
      ['line', 'Line'],
      ['scatter', 'Scatter'],
      ['histogram', 'Histogram']
    ]);
    const all = cols.map((c, i) => [`c${i}`, c.name] as [string, string]);
    const x = select('x', all, `c${firstText >= 0 ? firstText : 0}`);
    const y = select(
      'y',
      [['', '(count)'], ...numeric.map(([c, i]) => [`c${i}`, c.name] as [string, string])],
      numeric.length ? `c${numeric[numeric.length - 1][1]}` : ''
    );
    const agg = select('of', [
      ['sum', 'sum'],
      ['mean', 'mean'],
      ['count', 'count'],
      ['min', 'min'],
      ['max', 'max']
    ]);
    const draw = document.createElement('button');
    draw.className = 'jp-Button jp-mod-styled jp-mod-accept';
    draw.textContent = 'Draw';
    draw.dataset.action = 'draw';
    form.appendChild(draw);
    const caption = document.createElement('div');
    caption.className = 'agp-ResultGrid-chartNote';
    this.chartOutput.addClass('agp-ResultGrid-chartOutput');
    this.chartPanel.append(form, caption);
    Widget.attach(this.chartOutput, this.chartPanel);
    const sync = () => {
      agg.parentElement!.hidden = kind.value !== 'bar';
      y.parentElement!.hidden = kind.value === 'histogram';
    };
    kind.addEventListener('change', sync);
    sync();
    draw.addEventListener('click', () =>
      void this.drawChart(kind.value, x.value, kind.value === 'histogram' ? '' : y.value, agg.value, caption)
    );
  }

  private async drawChart(kind: string, x: string, y: string, agg: string, caption: HTMLElement): Promise<void> {
    const cols = this.table!.columns;
    const xCol = cols[Number(x.slice(1))];
    const yCol = y ? cols[Number(y.slice(1))] : null;
    const xType = xCol.kind === 'number' ? 'quantitative' : xCol.kind === 'date' ? 'temporal' : 'nominal';
    const yTitle = yCol ? (kind === 'bar' ? `${agg}(${yCol.name})` : yCol.name) : 'count';
    let spec: JSONObject;
    let note = '';
    if (this.comm && !this.comm.closed) {
      // The whole result, as filtered: aggregated, binned or sampled by the kernel.
      caption.textContent = 'Asking the kernel…';
      const { reply } = await this.comm.request({
        op: 'chart',
        result: this.table!.result,
        filter: (this.api?.getFilterModel() || {}) as JSONObject,
        chart: { kind, x, y: y || null, agg: y ? agg : 'count', bins: 30 }
      });
      if (reply.error) {
        caption.textContent = reply.error === 'gone' ? 'The kernel no longer holds this result.' : reply.error;
        return;
      }
      note = reply.note || '';
      const values = reply.values || [];
      if (kind === 'histogram') {
        spec = {
          data: { values },
          mark: 'bar',
          encoding: {
            x: { field: 'bin0', bin: { binned: true }, type: 'quantitative', title: xCol.name },
            x2: { field: 'bin1' },
            y: { field: 'count', type: 'quantitative', title: 'count' }
          }
        };
      } else {
        spec = {
          data: { values },
          mark: kind === 'scatter' ? 'point' : kind,
          encoding: {
            x: { field: 'x', type: kind === 'bar' ? 'nominal' : xType, title: xCol.name, sort: null },
            y: { field: 'y', type: 'quantitative', title: kind === 'bar' ? `${reply.agg || agg}(${yCol?.name ?? ''})` : yTitle }
          }
        };
      }
    } else {
      // Without the kernel: the embedded rows, aggregated and binned by Vega-Lite.
      const values = this.table!.rows.map(r => ({ x: r[Number(x.slice(1))], y: y ? r[Number(y.slice(1))] : null }));
      note = `The ${fmt(values.length)} rows stored in the notebook.`;
      const encoding: JSONObject =
        kind === 'histogram'
          ? { x: { field: 'x', bin: { maxbins: 30 }, type: 'quantitative', title: xCol.name }, y: { aggregate: 'count', type: 'quantitative' } }
          : kind === 'bar'
            ? {
                x: { field: 'x', type: 'nominal', title: xCol.name },
                y: y && agg !== 'count' ? { field: 'y', aggregate: agg, type: 'quantitative', title: yTitle } : { aggregate: 'count', type: 'quantitative' }
              }
            : { x: { field: 'x', type: xType, title: xCol.name }, y: { field: 'y', type: 'quantitative', title: yTitle } };
      spec = { data: { values }, mark: kind === 'scatter' ? 'point' : kind === 'histogram' ? 'bar' : kind, encoding };
    }
    caption.textContent = note;
    const full: JSONObject = {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      width: Math.max(300, Math.min(900, this.chartPanel.clientWidth - 80)), // 'container' measures 0 here
      height: 260,
      background: 'transparent',
      ...spec
    };
    if (!this.rendermime.mimeTypes.includes(VEGALITE)) {
      caption.textContent = 'This JupyterLab has no Vega-Lite renderer (@jupyterlab/vega5-extension).';
      return;
    }
    this.chartRenderer?.dispose();
    const renderer = this.rendermime.createRenderer(VEGALITE);
    this.chartRenderer = renderer;
    this.chartOutput.node.textContent = '';
    Widget.attach(renderer, this.chartOutput.node);
    await renderer.renderModel(this.rendermime.createModel({ data: { [VEGALITE]: full }, trusted: true }));
  }
}

/** Finds the kernel of the notebook an output is shown in. */
function kernelFinder(notebooks: INotebookTracker | null): KernelOf {
  return (node: HTMLElement) => {
    const panel = notebooks?.find(p => p.node.contains(node));
    return panel?.sessionContext.session?.kernel ?? null;
  };
}

export const resultsPlugin: JupyterFrontEndPlugin<void> = {
  id: '@agp/labextension:results',
  description: '%sql results as an interactive grid (sort, filter, copy, CSV and Parquet, charts).',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  optional: [INotebookTracker],
  activate: (app: JupyterFrontEnd, rendermime: IRenderMimeRegistry, notebooks: INotebookTracker | null) => {
    const kernelOf = kernelFinder(notebooks);
    rendermime.addFactory(
      {
        // Safe: every value is shown as text (AG Grid sets text, never HTML), so untrusted notebooks show it too.
        safe: true,
        mimeTypes: [MIME],
        defaultRank: 10,
        createRenderer: () => new ResultGrid(kernelOf, rendermime)
      },
      10 // before text/html: the bundle carries jupysql's or pandas' table too, for everything but this grid
    );
  }
};
