export {startApiServer, type ApiServer, type ApiServerOptions} from './server';
export {toHttpError, HttpError, type ErrorBody} from './http-errors';
export {openApiDocument} from './openapi';
