/**
 * The topology file is written in snake_case (YAML convention); the code reads
 * camelCase. One mapping, typed from the schema, instead of a hand-kept copy of
 * every key: a key added to the schema reaches the model, typed, by itself.
 */
type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S;

/** T with every object key camelCased, deeply (arrays and primitives as they are). */
export type CamelKeys<T> = T extends readonly (infer Item)[]
  ? CamelKeys<Item>[]
  : T extends object
    ? { [K in keyof T as K extends string ? CamelCase<K> : K]: CamelKeys<T[K]> }
    : T;

const camel = (key: string) => key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** A copy of a parsed (plain JSON) value with every object key camelCased. */
export function camelKeys<T>(value: T): CamelKeys<T> {
  if (Array.isArray(value)) return value.map((item: unknown) => camelKeys(item)) as CamelKeys<T>;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [camel(key), camelKeys(item)])) as CamelKeys<T>;
  }
  return value as CamelKeys<T>;
}
