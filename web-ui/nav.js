// Navigation state shared by the router and the views: whether the first page has been shown,
// the address of the last app list (for "All apps" links and the / shortcut), and a search focus
// the / shortcut asks of the next app list. Importers read the live bindings; only the setters write.
let booted = false;
let lastListHash = '#/apps';
let focusSearchOnMount = false;

const setBooted = (v) => (booted = v);
const setLastListHash = (v) => (lastListHash = v);
const setFocusSearchOnMount = (v) => (focusSearchOnMount = v);

export { booted, lastListHash, focusSearchOnMount, setBooted, setLastListHash, setFocusSearchOnMount };
