// typescript-eslint's recommended rules over the TypeScript of the library, its examples and tests;
// layout is prettier's (npm run format).
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'benchmarks/', '**/*.js', '**/*.cjs'] },
  ...tseslint.configs.recommended,
  // `const { kid, ...rest } = jwk` leaves kid out on purpose; `for (const _ of list)` counts
  { rules: { '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true, varsIgnorePattern: '^_' }] } },
)
