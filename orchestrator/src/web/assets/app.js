// The dashboard's router: #/ jobs, #/job/ID one job, #/workers agents. Each page returns a stop function.
import {ensureSession, esc} from '/ui/api.js';
import {jobsPage} from '/ui/jobs-page.js';
import {jobPage} from '/ui/job-page.js';
import {workersPage} from '/ui/workers-page.js';

const main = document.getElementById('main');
let stop = () => {};

async function route() {
  stop();
  main.innerHTML = '';
  const hash = location.hash || '#/';
  try {
    await ensureSession();
    if (hash.startsWith('#/job/')) stop = await jobPage(main, decodeURIComponent(hash.slice(6)));
    else if (hash === '#/workers') stop = await workersPage(main);
    else stop = await jobsPage(main);
  } catch (err) {
    main.innerHTML = `<p class="error">${esc(err.message)}</p>`;
    stop = () => {};
  }
}

window.addEventListener('hashchange', route);
route();
