// This project without jose on top: bare hsm.subtle.sign over the same bytes a JWT would sign.
import { runContender } from '../lib/contender.js'
import { openOurs } from '../lib/ours.js'

runContender(({ alg, token }) => openOurs({ alg, token, via: 'subtle' }))
