import type { Command } from 'commander';
import { InputError } from '../config/schema-check';

/** One command path ("token create") and the words that may follow it. */
interface CompletionEntry {
  path: string;
  words: string[];
}

/** Every command path with its subcommands and long options, read from the program itself. */
export function completionEntries(program: Command): CompletionEntry[] {
  const entries: CompletionEntry[] = [];
  const visit = (command: Command, path: string[]): void => {
    const subcommands = command.commands.map((sub) => sub.name());
    const options = command.options.flatMap((option) => (option.long ? [option.long] : []));
    entries.push({ path: path.join(' '), words: [...subcommands, ...options, '--help'] });
    for (const sub of command.commands) visit(sub, [...path, sub.name()]);
  };
  visit(program, []);
  return entries;
}

/** Only names and flags go into the scripts: anything else would be shell code. */
function safeWord(word: string): string {
  if (!/^[A-Za-z0-9-]+$/.test(word)) throw new Error(`not a completion word: ${word}`);
  return word;
}

export function bashCompletion(program: Command): string {
  const cases = completionEntries(program)
    .map((entry) => `    "${entry.path.split(' ').filter(Boolean).map(safeWord).join(' ')}") words="${entry.words.map(safeWord).join(' ')}" ;;`)
    .join('\n');
  return `# bash completion for vipd; load with: source <(vipd completion bash)
_vipd() {
  local cur path word i words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  path=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    [[ "$word" == -* ]] && continue
    case "$path" in
${completionCaseList(program)}
    esac
  done
  case "$path" in
${cases}
    *) words="" ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
  # A flag that takes a value (e.g. --config FILE): offer files.
  if [[ \${#COMPREPLY[@]} -eq 0 && "$cur" != -* ]]; then COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -F _vipd vipd
`;
}

/** Moves `path` one level down when the word is a subcommand of it. */
function completionCaseList(program: Command): string {
  return completionEntries(program)
    .map((entry) => {
      const subcommands = entry.words.filter((word) => !word.startsWith('-'));
      if (subcommands.length === 0) return null;
      const prefix = entry.path === '' ? '' : `${entry.path} `;
      return `      "${entry.path.split(' ').filter(Boolean).map(safeWord).join(' ')}") case "$word" in ${subcommands.map(safeWord).join('|')}) path="${prefix}$word" ;; esac ;;`;
    })
    .filter((line): line is string => line !== null)
    .join('\n');
}

export function zshCompletion(program: Command): string {
  return `#compdef vipd
# zsh completion for vipd; install as _vipd in a directory on $fpath, or: source <(vipd completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(program)}`;
}

/** `vipd completion bash|zsh`: prints the completion script for the shell. */
export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('print the shell completion script (bash or zsh): source <(vipd completion bash)')
    .argument('<shell>', 'bash or zsh')
    .action((shell: string) => {
      if (shell === 'bash') process.stdout.write(bashCompletion(program));
      else if (shell === 'zsh') process.stdout.write(zshCompletion(program));
      else throw new InputError('shell', `must be bash or zsh (got ${JSON.stringify(shell.slice(0, 20))})`);
    });
}
