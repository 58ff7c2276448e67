"""quizroom.server"""
