/** Exit codes of every vipd command. */
export const EXIT_OK = 0;
/** Something could not be reached (etcd, the API): trying again may help. */
export const EXIT_UNAVAILABLE = 1;
/** Bad input: a config field, a flag, a requirement. The message names it. */
export const EXIT_BAD_INPUT = 2;
