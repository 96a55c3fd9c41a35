# bash completion for kosli-cred (installed as
# share/bash-completion/completions/kosli-cred).
#
# The tables below are checked against the programs' own grammar by
# scripts/check-docs (ctest docs_match_grammar): a command or option added to
# kosli-cred must be added here too.

_kosli_cred_tables() {
  _kosli_cred_commands="store token header exec list show erase verify rotate status lock git-credential git-setup doctor"
  _kosli_cred_globals="--socket --daemon-uid"
  # Each command's options, and the words of its subcommands ("git setup": [git]="setup …").
  declare -gA _kosli_cred_options=(
    [store]="--profile -p --org --region --host --kind --expires-at --description --service-account --key-id"
    [token]="--profile -p --json"
    [header]="--profile -p"
    [exec]="--profile -p"
    [list]="--json"
    [show]="--profile -p --json"
    [erase]="--profile -p"
    [verify]="--profile -p --json"
    [rotate]="--profile -p --via-api --grace-hours --expires-at --no-verify --key-id"
    [status]="--json"
    [lock]=""
    [git-credential]=""
    [git-setup]="--global"
    [doctor]="--json --online"
  )
}

# Profile names from a running daemon (list --json: its names, nothing else);
# never starts one just to complete.
_kosli_cred_profiles() {
  KOSLI_CRED_AUTOSTART=0 kosli-cred list --json 2>/dev/null |
    sed -n 's/^      "name": "\([a-z0-9][a-z0-9._-]*\)",\{0,1\}$/\1/p'
}

_kosli_cred() {
  local cur prev words cword
  _init_completion || return
  _kosli_cred_tables

  # The command (and subcommand) typed so far.
  local command="" i
  for ((i = 1; i < cword; i++)); do
    case "${words[i]}" in
      --socket | --daemon-uid | --profile | -p | --org | --region | --host | --kind | --expires-at | \
        --description | --service-account | --key-id | --grace-hours) ((i++)) ;;
      --) break ;;
      -*) ;;
      *)
        if [[ -z "$command" && " $_kosli_cred_commands " == *" ${words[i]} "* ]]; then
          command="${words[i]}"
        elif [[ -n "$command" && " ${_kosli_cred_options[$command]} " == *" ${words[i]} "* ]]; then
          command="$command ${words[i]}"
        else
          break
        fi
        ;;
    esac
  done

  case "$prev" in
    --socket) _filedir; return ;;
    --profile | -p) COMPREPLY=($(compgen -W "$(_kosli_cred_profiles)" -- "$cur")); return ;;
    --region) COMPREPLY=($(compgen -W "eu us" -- "$cur")); return ;;
    --kind) COMPREPLY=($(compgen -W "service-account personal" -- "$cur")); return ;;
    --daemon-uid) COMPREPLY=($(compgen -W "$(id -u)" -- "$cur")); return ;;
    --org | --host | --expires-at | --description | --service-account | --key-id | --grace-hours) return ;;
  esac

  if [[ -z "$command" ]]; then
    COMPREPLY=($(compgen -W "$_kosli_cred_commands $_kosli_cred_globals --help --version" -- "$cur"))
    return
  fi

  case "$command" in
    exec)
      local j
      for ((j = i; j < cword; j++)); do
        if [[ "${words[j]}" == "--" ]]; then
          _command_offset $((j + 1))
          return
        fi
      done
      COMPREPLY=($(compgen -W "${_kosli_cred_options[exec]} $_kosli_cred_globals --help --" -- "$cur"))
      return
      ;;
    git-credential) COMPREPLY=($(compgen -W "get store erase capability" -- "$cur")); return ;;
  esac
  COMPREPLY=($(compgen -W "${_kosli_cred_options[$command]} $_kosli_cred_globals --help" -- "$cur"))
}

complete -F _kosli_cred kosli-cred
