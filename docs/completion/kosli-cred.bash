# bash completion for kosli-cred (installed as
# share/bash-completion/completions/kosli-cred).

# Profile names from a running daemon; never starts one just to complete.
_kosli_cred_profiles() {
  KOSLI_CRED_AUTOSTART=0 kosli-cred list 2>/dev/null | awk 'NR > 1 && $1 != "No" { print $1 }'
}

_kosli_cred() {
  local cur prev words cword
  _init_completion || return

  local commands="store token header exec list show erase status lock git-credential git-setup"
  local command="" i
  for ((i = 1; i < cword; i++)); do
    case "${words[i]}" in
      --socket | --daemon-uid) ((i++)) ;;
      --) break ;;
      -*) ;;
      *) command="${words[i]}"; break ;;
    esac
  done

  case "$prev" in
    --socket) _filedir; return ;;
    --profile | -p) COMPREPLY=($(compgen -W "$(_kosli_cred_profiles)" -- "$cur")); return ;;
    --region) COMPREPLY=($(compgen -W "eu us" -- "$cur")); return ;;
    --kind) COMPREPLY=($(compgen -W "service-account personal" -- "$cur")); return ;;
    --daemon-uid) COMPREPLY=($(compgen -W "$(id -u)" -- "$cur")); return ;;
    --org | --host | --expires-at | --description | --service-account | --key-id) return ;;
  esac

  if [[ -z "$command" ]]; then
    COMPREPLY=($(compgen -W "$commands --socket --daemon-uid --help --version" -- "$cur"))
    return
  fi

  local options="--socket --daemon-uid --help"
  case "$command" in
    store) options+=" --profile --org --region --host --kind --expires-at --description --service-account --key-id" ;;
    token) options+=" --profile --json" ;;
    header | erase) options+=" --profile" ;;
    show) options+=" --profile --json" ;;
    list | status) options+=" --json" ;;
    exec)
      local j
      for ((j = i; j < cword; j++)); do
        if [[ "${words[j]}" == "--" ]]; then
          _command_offset $((j + 1))
          return
        fi
      done
      options+=" --profile --"
      ;;
    git-credential) COMPREPLY=($(compgen -W "get store erase capability" -- "$cur")); return ;;
    git-setup) options+=" --global" ;;
  esac
  COMPREPLY=($(compgen -W "$options" -- "$cur"))
}

complete -F _kosli_cred kosli-cred
