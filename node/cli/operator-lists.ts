/** The values `deals`/`tasks` listing flags take (operator-program.ts checks them, operator-commands.ts filters by them). */
export const LIST_ROLE_NAMES = ['requester', 'worker', 'scheduler', 'any']
export const LIST_STATUS_NAMES = ['UNSET', 'ACTIVE', 'REVEALING', 'COMPLETED', 'FAILED', 'CLAIMABLE']
