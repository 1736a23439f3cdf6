/**
 * Scripted relay events for tests: the fields a test names, typed by the event's `type`
 * (a misspelt field or a reason no service emits does not compile), the rest left out.
 */
import { makeEvent, type EventInput, type EventOf, type RelayEvent, type RelayEventType } from '../../proto/events';

export type EventFields<T extends RelayEventType> = Partial<Omit<EventOf<T>, 'type'>>;

export function scripted<T extends RelayEventType>(type: T, fields: EventFields<T> = {}): RelayEvent {
  return makeEvent({ type, ...fields } as EventInput);
}

/** The events of one type, typed. */
export function ofType<T extends RelayEventType>(events: readonly RelayEvent[], type: T): EventOf<T>[] {
  return events.filter((e): e is EventOf<T> => e.type === type);
}
