declare const __BOOTRELAY_VERSION__: string | undefined;
/** Set by scripts/build.mjs; "dev" when run from source. */
export const VERSION: string = typeof __BOOTRELAY_VERSION__ === 'string' ? __BOOTRELAY_VERSION__ : 'dev';
