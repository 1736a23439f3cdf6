/** The HTTP service's options (config section `http`). */
export interface HttpConfig {
  port: number;
}
