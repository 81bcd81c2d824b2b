// Typed errors: one class per gRPC status code latchkey answers with.
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';

export interface FieldViolation {
  field: string;
  description: string;
}

/** A failed call: `code` is the gRPC status code, `details` the server's message. */
export class LatchkeyError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
    readonly fieldViolations: FieldViolation[] = [],
  ) {
    super(`${grpc.status[code]}: ${details}`);
    this.name = new.target.name;
  }
}
export class NotFoundError extends LatchkeyError {}
/** `fieldViolations` comes from the google.rpc.BadRequest status detail. */
export class InvalidArgumentError extends LatchkeyError {}
export class UnauthenticatedError extends LatchkeyError {}
export class PermissionDeniedError extends LatchkeyError {}
export class AlreadyExistsError extends LatchkeyError {}
export class FailedPreconditionError extends LatchkeyError {}
export class UnavailableError extends LatchkeyError {}
export class DeadlineExceededError extends LatchkeyError {}

const BY_CODE: Partial<Record<grpc.status, typeof LatchkeyError>> = {
  [grpc.status.NOT_FOUND]: NotFoundError,
  [grpc.status.INVALID_ARGUMENT]: InvalidArgumentError,
  [grpc.status.UNAUTHENTICATED]: UnauthenticatedError,
  [grpc.status.PERMISSION_DENIED]: PermissionDeniedError,
  [grpc.status.ALREADY_EXISTS]: AlreadyExistsError,
  [grpc.status.FAILED_PRECONDITION]: FailedPreconditionError,
  [grpc.status.UNAVAILABLE]: UnavailableError,
  [grpc.status.DEADLINE_EXCEEDED]: DeadlineExceededError,
};

// Just the fields of google.rpc.Status and google.rpc.BadRequest we read: the
// details travel as a serialized Status in the grpc-status-details-bin trailer.
const rpc = protobuf.Root.fromJSON({
  nested: {
    Status: {
      fields: { code: { type: 'int32', id: 1 }, message: { type: 'string', id: 2 }, details: { rule: 'repeated', type: 'Any', id: 3 } },
    },
    Any: { fields: { typeUrl: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } },
    BadRequest: { fields: { fieldViolations: { rule: 'repeated', type: 'FieldViolation', id: 1 } } },
    FieldViolation: { fields: { field: { type: 'string', id: 1 }, description: { type: 'string', id: 2 } } },
  },
});
const Status = rpc.lookupType('Status');
const BadRequest = rpc.lookupType('BadRequest');

function fieldViolations(metadata: grpc.Metadata | undefined): FieldViolation[] {
  const raw = metadata?.get('grpc-status-details-bin')[0];
  if (!Buffer.isBuffer(raw)) return [];
  try {
    const status = Status.toObject(Status.decode(raw), { defaults: true }) as { details: { typeUrl: string; value: Uint8Array }[] };
    return status.details
      .filter((d) => d.typeUrl.endsWith('/google.rpc.BadRequest'))
      .flatMap((d) => (BadRequest.toObject(BadRequest.decode(d.value), { defaults: true }) as { fieldViolations: FieldViolation[] }).fieldViolations);
  } catch {
    return []; // undecodable details: the code and message still say what went wrong
  }
}

/** The typed error for a failed call (LatchkeyError for other codes). */
export function toLatchkeyError(err: grpc.ServiceError): LatchkeyError {
  const Class = BY_CODE[err.code] ?? LatchkeyError;
  return new Class(err.code, err.details, err.code === grpc.status.INVALID_ARGUMENT ? fieldViolations(err.metadata) : []);
}
