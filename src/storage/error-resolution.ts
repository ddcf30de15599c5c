/**
 * Resolving or reopening one error group: an admin's change to one row, made through the entity
 * manager (a fork per call, as MikroORM's guide has it) rather than the writer, which batches
 * client events. The row is read with `FOR UPDATE` inside the transaction, so an occurrence being
 * stored at the same moment (which reopens a resolved error: `error-writes.ts`) waits for this
 * change and is applied after it, never lost under it.
 */
import { LockMode } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import { ErrorLogEntity, type ErrorLog } from "../db/entities/error-log.js";

/** The group's state after the change. */
export interface ErrorResolution {
  readonly id: string;
  readonly resolved: boolean;
  readonly resolvedAt: Date | undefined;
}

/**
 * Marks error `id` resolved (keeping the time it was first resolved, clearing `regressed`) or
 * reopens it (clearing the time). Undefined when there is no such error.
 */
export async function setErrorResolved(em: EntityManager, id: string, resolved: boolean, now: Date): Promise<ErrorResolution | undefined> {
  return em.fork().transactional(async (tx) => {
    const error: ErrorLog | null = await tx.findOne(ErrorLogEntity, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (!error) return undefined;
    if (resolved) {
      error.resolved = true;
      error.resolvedAt ??= now;
      error.regressed = false;
    } else {
      error.resolved = false;
      error.resolvedAt = null;
    }
    // Flushed when the transaction commits.
    return { id: error.id, resolved: error.resolved, resolvedAt: error.resolvedAt ?? undefined };
  });
}
