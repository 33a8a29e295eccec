// The `rnnkit` command line: one commander program holding every command; commander writes the help.
import { Command, CommanderError } from 'commander';
import { addConvertCommands } from './convert.js';
import { addExampleCommand } from './example.js';
import { addLanguageModelCommands } from './lm.js';
import { CliError, type Io } from './options.js';
import { addTorchCommands } from './torch.js';
import { addCheckCommands } from './verify.js';

export { CliError, type Io } from './options.js';
export { doctor } from './verify.js';

const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

/** The program: every command writes through `io` and reports its exit code through `setCode`. */
function cliProgram(io: Io, setCode: (code: number) => void): Command {
  const program = new Command('rnnkit')
    .description('Recurrent neural networks (RNN, LSTM, GRU) with PyTorch semantics: language models, sequence-task examples, backend checks.')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s), outputError: () => {} })
    .showSuggestionAfterError(true)
    .allowExcessArguments(false);
  addLanguageModelCommands(program, io, setCode);
  addExampleCommand(program, io, setCode);
  addCheckCommands(program, io, setCode);
  addConvertCommands(program, io, setCode);
  addTorchCommands(program, io, setCode);
  program.addHelpText('after', '\n`rnnkit help COMMAND` (or `rnnkit COMMAND --help`) describes each command\'s options.\n');
  return program;
}

/** One line on stderr for a bad command line (exit code 2); help exits 0 (1 when no command was given). */
function exitCode(e: unknown, program: Command, argv: string[], io: Io): number {
  const command = program.commands.find((c) => c.name() === argv[0]);
  const where = command ? `rnnkit ${command.name()}` : 'rnnkit';
  if (e instanceof CommanderError) {
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version') return e.exitCode;
    io.err(`${where}: ${e.message.replace(/^error: /, '').replace(/\n+/g, ' ').trim()} (see ${where} --help)\n`);
    return 2;
  }
  if (e instanceof CliError) {
    io.err(`${where}: ${e.message}\n`);
    return 2;
  }
  throw e;
}

let pipeGuard = false;

/** Runs `rnnkit ARGV...`; resolves to the exit code. */
export async function main(argv: string[], io: Io = stdio): Promise<number> {
  // `rnnkit sample DIR | head`: a closed pipe ends the command quietly
  if (!pipeGuard && io === stdio) {
    pipeGuard = true;
    process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(0); else throw e; });
  }
  let code = 0;
  const program = cliProgram(io, (c) => { code = c; });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    return exitCode(e, program, argv, io);
  }
  return code;
}

/** `rnnkit verify-torch ARGV...` run synchronously, its output to `print`; returns the exit code. */
export function verifyTorch(argv: string[], print: (s: string) => void): number {
  const io: Io = { out: print, err: print };
  let code = 0;
  const program = cliProgram(io, (c) => { code = c; });
  try {
    program.parse(['verify-torch', ...argv], { from: 'user' });
  } catch (e) {
    return exitCode(e, program, ['verify-torch', ...argv], io);
  }
  return code;
}
