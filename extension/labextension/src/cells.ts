/**
 * Putting SQL into the active notebook: at the cursor of a `%%sql` cell, into an empty cell, or in a new cell below.
 */
import { Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';

/**
 * SQL as the text of a `%%sql` cell that runs it as it is. jupysql renders a cell's SQL as a Jinja template over the
 * kernel's variables, unsandboxed (`{{ lipsum.__globals__.os.system(...) }}` runs Python), and the SQL put into cells
 * here is others' text: the query history holds anyone's query that touched the workspace, the catalog names others
 * chose. Each `{` that would open a Jinja tag becomes the expression `{{ '{' }}`, which renders back to `{`.
 */
export function literalSql(sql: string): string {
  return sql.replace(/\{(?=[{%#])/g, "{{ '{' }}");
}

/**
 * Puts `%%sql\n<sql>` into the active notebook: the SELECT alone at the cursor of a cell that is already a `%%sql`
 * cell, the whole text into an empty code cell, else a new code cell below the active one (a `%%sql` line is only a
 * cell magic as a cell's first line). With `run`, the cell is executed. False when no notebook is open.
 */
export async function putSql(tracker: INotebookTracker, sql: string, options: { run?: boolean; newCell?: boolean } = {}): Promise<boolean> {
  const panel = tracker.currentWidget;
  if (!panel) {
    Notification.warning('Open a notebook first: the SQL goes into its active cell.', { autoClose: 5000 });
    return false;
  }
  const notebook = panel.content;
  const active = notebook.activeCell;
  sql = literalSql(sql);
  const text = `%%sql\n${sql}`;
  const source = active?.model.sharedModel.getSource() ?? '';
  if (!options.newCell && active?.model.type === 'code' && /^%%sql\b/.test(source) && active.editor) {
    active!.editor!.replaceSelection?.(sql);
  } else if (!options.newCell && active?.model.type === 'code' && !source.trim()) {
    active!.model.sharedModel.setSource(text);
  } else {
    NotebookActions.insertBelow(notebook);
    if (notebook.activeCell?.model.type !== 'code') {
      NotebookActions.changeCellType(notebook, 'code');
    }
    notebook.activeCell?.model.sharedModel.setSource(text);
  }
  const cell = notebook.activeCell;
  if (options.run) {
    await NotebookActions.run(notebook, panel.sessionContext);
  } else if (cell) {
    notebook.mode = 'edit';
    cell.editor?.focus();
  }
  return true;
}
