export {SqliteStore, openStore, migrate} from './sqlite-store';
