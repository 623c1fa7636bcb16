/**
 * Antigravity in JupyterLab: "Run as job…" for notebooks and Python files, and the workspace's Jobs panel.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, ToolbarButton, WidgetTracker } from '@jupyterlab/apputils';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { IRun } from './api';
import { runAsJob } from './dialog';
import { jobsIcon } from './icon';
import { logWidget } from './log';
import { JobsPanel } from './panel';
import { identityPlugin } from './identity';
import { catalogPlugin } from './catalog';
import { historyPlugin } from './history';
import { resultsPlugin } from './results';

namespace CommandIDs {
  export const run = 'agp-jobs:run';
  export const openPanel = 'agp-jobs:open-panel';
}

const RUNNABLE = /\.(ipynb|py)$/i;

const plugin: JupyterFrontEndPlugin<void> = {
  id: '@agp/labextension:jobs',
  description: 'Run a notebook or a Python file as a job of the workspace, and follow its runs.',
  autoStart: true,
  requires: [IFileBrowserFactory],
  optional: [INotebookTracker, ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    browsers: IFileBrowserFactory,
    notebooks: INotebookTracker | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const logs = new WidgetTracker<MainAreaWidget<Widget>>({ namespace: 'agp-jobs-log' });
    const panel = new JobsPanel({
      showLog: (run: IRun) => {
        const existing = logs.find(w => w.id === `agp-jobs-log-${run.id}`);
        if (existing) {
          app.shell.activateById(existing.id);
          return;
        }
        const widget = logWidget(run.id, run.job_name);
        void logs.add(widget);
        app.shell.add(widget, 'main');
      },
      openFile: (path: string) => void app.commands.execute('docmanager:open', { path })
    });
    app.shell.add(panel, 'left', { rank: 650 });
    if (restorer) {
      restorer.add(panel, 'agp-jobs-panel');
    }
    const openPanel = () => app.shell.activateById(panel.id);

    /** The file the command is about: its `path` argument, the current notebook, or the file browser's selection. */
    const target = (args: Record<string, unknown>): { path: string; notebook: NotebookPanel | null } | null => {
      if (typeof args.path === 'string') {
        return { path: args.path, notebook: null };
      }
      const current = notebooks?.currentWidget;
      if (current && (args.fromNotebook || app.shell.currentWidget === current)) {
        return { path: current.context.path, notebook: current };
      }
      const item = browsers.tracker.currentWidget?.selectedItems().next();
      const model = item && !item.done ? item.value : null;
      return model && model.type !== 'directory' ? { path: model.path, notebook: null } : null;
    };

    app.commands.addCommand(CommandIDs.run, {
      label: args => (args.fromNotebook ? 'Run as job' : 'Run as job…'),
      caption: 'Run this notebook or Python file as a job of the workspace (now or on a schedule)',
      icon: args => (args.fromNotebook ? jobsIcon : undefined),
      isEnabled: args => {
        const t = target(args);
        return !!t && RUNNABLE.test(t.path);
      },
      execute: async args => {
        const t = target(args);
        if (!t || !RUNNABLE.test(t.path)) {
          return;
        }
        if (t.notebook && t.notebook.context.model.dirty) {
          await t.notebook.context.save(); // the job runs what is saved
        }
        await runAsJob(t.path, () => void panel.refresh(), openPanel);
      }
    });
    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'Open Jobs panel',
      caption: "The workspace's recent job runs",
      execute: openPanel
    });

    for (const fileType of ['notebook', 'python']) {
      app.contextMenu.addItem({
        command: CommandIDs.run,
        selector: `.jp-DirListing-item[data-file-type="${fileType}"]`,
        rank: 11
      });
    }
    if (palette) {
      palette.addItem({ command: CommandIDs.run, category: 'Jobs' });
      palette.addItem({ command: CommandIDs.openPanel, category: 'Jobs' });
    }
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (nb: NotebookPanel) => {
        const runButton = new ToolbarButton({
          icon: jobsIcon,
          tooltip: 'Run as job…',
          onClick: () => {
            app.shell.activateById(nb.id);
            void app.commands.execute(CommandIDs.run, { fromNotebook: true });
          }
        });
        nb.toolbar.insertItem(10, 'agp-run-as-job', runButton);
        return runButton;
      }
    });
  }
};

/**
 * Every plugin of the extension; each part of the workbench adds its own plugin here (one import, one entry).
 */
const plugins: JupyterFrontEndPlugin<any>[] = [plugin, identityPlugin, catalogPlugin, historyPlugin, resultsPlugin];

export default plugins;
