/** Jest: TypeScript tests under test/, compiled by ts-jest. Integration tests spawn real Python agents. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {'^.+\\.ts$': ['ts-jest', {tsconfig: 'tsconfig.test.json'}]},
  testTimeout: 120000,
  maxWorkers: 1,
};
